# -*- coding: utf-8 -*-
# Copyright: zombie-cleaner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One scan of a node, in three steps: observe (read /proc, attribute, under the deadline), evaluate (pure:
sightings, decisions, ranking, summary, diff) and persist and publish (state, metrics, audit log)."""

from __future__ import annotations

import contextlib
import dataclasses
import signal
import socket
import time

from ansible.module_utils.zombie_cleaner import config, module_args
from ansible.module_utils.zombie_cleaner.observe import cgroups, procfs
# attribution, records and runtimes are imported where they are used, by the code that only runs when there are
# zombies: a module runs from a zip and compiles its code from source on every run, and on a node without
# zombies (most of a fleet, most of the time) those took a third of the module's own start-up.
from ansible.module_utils.zombie_cleaner.record import audit, metrics, state

# Containers kept in the state's last-scan snapshot (and so in the metrics): the worst first.
SNAPSHOT_CONTAINERS = 100


class ScanTimeout(Exception):
    """The scan took longer than process_timeout."""


@contextlib.contextmanager
def deadline(seconds):
    """Raise ScanTimeout in this (main) thread once seconds have passed.

    A timer signal costs nothing inside the hot /proc loop, unlike checking
    the clock per process. Outside the main thread it is simply not armed.
    """
    def expire(signum, frame):
        raise ScanTimeout("the /proc scan took longer than process_timeout (%.1fs)" % seconds)

    try:
        previous = signal.signal(signal.SIGALRM, expire)
    except ValueError:
        yield
        return
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class ScanOptions:
    """Validated scan settings: zombie_scan's parameters, with the defaults of its argument spec
    (module_args.SCAN_ARGUMENT_SPEC). Raises config.ConfigError on the first bad one.

    from_params takes the module's params. Built by name (tests, benchmarks), the node's outputs are off
    unless given: audit_log (an audit.AuditLog, or audit_log_path and its settings) and metrics_textfile_dir;
    runtime_files ({name: directory}) may stand for the runtime directory parameters."""

    def __init__(self, audit_log=None, runtime_files=None, **given):
        params = module_args.settings(module_args.SCAN_ARGUMENT_SPEC, dict(given, **(runtime_files or {})),
                                      off=module_args.NODE_OUTPUTS)
        self.proc_root = params["proc_root"].rstrip("/") or "/"
        self.state_path = params["state_path"]
        self.confirm_count = config.positive_int("confirm_count", params["confirm_count"])
        self.whitelist_patterns = list(params["whitelist_patterns"])
        self.whitelist = config.compile_whitelist(self.whitelist_patterns)
        self.process_timeout = config.parse_duration("process_timeout", params["process_timeout"])
        self.check_interval = config.parse_duration("check_interval", params["check_interval"])
        self.runtime_files = module_args.runtime_files(params)
        self.cgroup_root = params["cgroup_root"]
        self.audit_log = audit_log or module_args.audit_log(params)
        self.metrics_textfile_dir = params["metrics_textfile_dir"] or None
        # Only decides what `to_cure` lists; the scan itself never touches a process.
        self.reap_host_zombies = bool(params["reap_host_zombies"])

    @classmethod
    def from_params(cls, params):
        """From the zombie_scan module's params (every key of its spec; the controller's own are unused here)."""
        return cls(**params)


def _ranked(containers):
    """Closest to failing forks first (pids pressure), then most zombies."""
    return sorted(containers, key=lambda item: cgroups.pressure_order(item.pids_pressure, item.zombie_count)
                  + (item.container_id,))


def add_pids_usage(record, attributor, cgroup_root):
    """pids cgroup numbers of the container, from its init's cgroup (a live process keeps its v1 paths)."""
    pid = (record.init or {}).get("pid") or record.zombies[0]["pid"]
    usage = cgroups.pids_usage(attributor.cgroup_entries(pid), cgroup_root) or {}
    record.update(pids_current=usage.get("current"), pids_max=usage.get("max"), pids_pressure=usage.get("pressure"),
                  pids_limit_cgroup=usage.get("limit_cgroup"))
    return record


@dataclasses.dataclass
class Observation:
    """What the node showed in one pass over /proc (observe): containers and host groups by key
    (records.ContainerRecord, records.HostGroup), not judged yet."""

    boot_id: str
    containers: dict
    host_groups: dict
    zombie_count: int
    scanned_processes: int
    node_pids: dict
    vm_sandboxes: list
    seconds: float = 0.0


def observe(options):
    """Read /proc, attribute every zombie, read the pids cgroups: the only step under the deadline
    (process_timeout), and the only one that reads the node's processes."""
    started = time.monotonic()
    boot_id = procfs.read_boot_id(options.proc_root)
    with deadline(options.process_timeout):
        table = procfs.scan(options.proc_root)
        zombies = [stat for stat in table.values() if procfs.is_zombie(stat)]
        node_pids = procfs.node_pid_budget(options.proc_root, table)
        if not zombies:
            return Observation(boot_id, {}, {}, 0, len(table), node_pids, [], time.monotonic() - started)
        from ansible.module_utils.zombie_cleaner.observe import attribution, runtimes
        attributor = attribution.Attributor(table, options.proc_root,
                                            runtimes.RuntimeFiles(**options.runtime_files))
        containers, host_groups = attributor.attribute(zombies)
        for record in containers.values():
            add_pids_usage(record, attributor, options.cgroup_root)
    return Observation(boot_id, containers, host_groups, len(zombies), len(table), node_pids,
                       attributor.vm_sandboxes(), time.monotonic() - started)


def _not_confirmed_yet(entry):
    runs = max(entry["runs"].values())
    age = entry["last_seen"] - min(entry["zombies"].values())
    return "not confirmed yet: the same zombies seen in %d runs over %.0fs" % (runs, age)


def decide(container, entry, whitelist):
    """The verdict fields of one container (records.ContainerRecord.VERDICT) from its sighting entry:
    confirmation, protection and candidacy."""
    from ansible.module_utils.zombie_cleaner.observe import attribution
    protection = config.protecting_pattern(whitelist, container)
    # A Kubernetes container the whitelist cannot name is protected: unknown fails closed.
    protected = protection is not None or bool(container.identity_unknown)
    curable = bool(set(attribution.CURABLE) & set(container.parent_classes))
    if not entry["confirmed"]:
        reason = _not_confirmed_yet(entry)
    elif protected and not protection:
        reason = "identity unknown: %s" % container.identity_unknown
    elif protected:
        reason = "protected by whitelist pattern %s" % protection[0]
    elif container.shim is None:
        reason = "no shim found: cannot act on a container whose runtime process is unknown"
    elif not curable:
        reason = "zombies held by the runtime itself (%s): a restart of the application will not cure it" % (
            container.shim["binary"])
    else:
        reason = "confirmed"
    return dict(
        sightings=entry["count"], confirmed=entry["confirmed"], since=entry["since"], protected=protected,
        protected_by=({"pattern": protection[0], "subject": protection[1]} if protection else
                      {"pattern": None, "subject": "identity unknown"} if protected else None),
        protected_members=protected_members(container, whitelist),
        runtime_fault=attribution.RUNTIME in container.parent_classes,
        candidate=reason == "confirmed", decision=reason)


def protected_members(container, whitelist):
    """Labels of the other containers of this container's pod sandbox that the whitelist protects (or that
    cannot be named): their shim is this one's, so it is never killed while there are any."""
    from ansible.module_utils.zombie_cleaner.observe import attribution
    found = []
    for member in container.get("sandbox_members") or []:
        if attribution.identity_unknown(dict(member, containerd_namespace=container.get("containerd_namespace"))) \
                or config.protecting_pattern(whitelist, member):
            found.append(attribution.label(member))
    return found


def judged_container(record, entry, options):
    """A copy of the observed container with this run's verdict."""
    from ansible.module_utils.zombie_cleaner.observe import records
    return dataclasses.replace(record, zombies=records.judged_zombies(record, entry), confirm_count=options.confirm_count,
                               **decide(record, entry, options.whitelist))


def judged_host_group(group, entry):
    """A copy of the observed host group with this run's sightings: never a candidate for a restart or a signal."""
    from ansible.module_utils.zombie_cleaner.observe import records
    return dataclasses.replace(group, zombies=records.judged_zombies(group, entry), sightings=entry["count"],
                               confirmed=entry["confirmed"], since=entry["since"], candidate=False)


def _pids_text(item):
    if item.pids_current is None:
        return ""
    text = ", pids %d/%s" % (item.pids_current, item.pids_max if item.pids_max is not None else "max")
    if item.pids_pressure is not None:
        text += " (%d%% of the limit%s)" % (round(item.pids_pressure * 100), "" if item.pids_max is not None
                                            else " of %s" % item.pids_limit_cgroup)
    return text


def node_pids_line(node_pids):
    limits = ", ".join("%s %s" % (name, node_pids[key]) for key, name in (("pid_max", "pid_max"),
                                                                       ("threads_max", "threads-max"))
                       if node_pids.get(key))
    pressure = node_pids.get("pressure")
    return "node: %d tasks (%s)%s" % (node_pids["tasks"], limits or "limits unreadable",
                                      ", %d%% of the PID budget" % round(pressure * 100) if pressure is not None else "")


def report_lines(containers, host_groups, node_pids=None):
    """Human lines for the play output: a summary, then one line per container and host parent."""
    in_containers = sum(item.zombie_count for item in containers)
    on_host = sum(group.zombie_count for group in host_groups)
    lines = ["%d zombies: %d in %d containers (%d confirmed, %d protected, %d to remediate), %d on the host" % (
        in_containers + on_host, in_containers, len(containers), sum(1 for item in containers if item.confirmed),
        sum(1 for item in containers if item.protected), sum(1 for item in containers if item.candidate), on_host)]
    if containers:
        from ansible.module_utils.zombie_cleaner.observe import attribution
    for item in containers:
        parents = ", ".join("%s[%s] %s" % (p["name"], p["pid"], p["parent_class"]) for p in item.parents)
        lines.append("%s (%s %s): %d zombies%s, parent %s, seen %d/%s: %s" % (
            attribution.label(item), item.runtime, item.container_id[:12], item.zombie_count,
            _pids_text(item), parents, item.sightings, item.confirm_count or "?", item.decision))
    for group in host_groups:
        claim = group.unverified_identity
        lines.append("host: %d zombies of %s[%s], seen %d runs%s" % (
            group.zombie_count, group.parent["name"], group.parent["pid"], group.sightings,
            "; claims container %s (identity unverified: %s)" % ((claim["container_id"] or "?")[:12], claim["reason"])
            if claim else ""))
    if node_pids:
        lines.append(node_pids_line(node_pids))
    return lines


# A gap this many times off check_interval, either way, is worth a warning.
SCHEDULE_GAP_FACTOR = 3


def schedule_gap_warning(gap, check_interval, confirm_count):
    """A warning when the time since this node's previous run is far from check_interval, either way:
    confirmation then takes much longer, or comes much sooner, than confirm_count x check_interval."""
    if gap is None or check_interval <= 0:
        return None
    planned = confirm_count * check_interval
    if gap > SCHEDULE_GAP_FACTOR * check_interval:
        return ("%.0fs since the previous run on this node, check_interval is %.0fs: confirmation takes "
                "about %.0fs instead of %.0fs (is the schedule running?)" % (gap, check_interval, confirm_count * gap, planned))
    if gap < check_interval / SCHEDULE_GAP_FACTOR:
        return ("%.0fs since the previous run on this node, check_interval is %.0fs: at this pace a zombie is "
                "confirmed after about %.0fs instead of %.0fs (runs more often than check_interval says; "
                "set it to the real schedule)" % (gap, check_interval, confirm_count * gap, planned))
    return None


def _snapshot_container(item):
    from ansible.module_utils.zombie_cleaner.observe import attribution
    return {"container_id": item.container_id, "namespace": item.namespace, "pod": item.pod,
            "container": item.container_name or item.name, "runtime": item.runtime,
            "label": attribution.label(item), "zombies": item.zombie_count,
            "workload": item.workload, "pid_namespace": item.pid_namespace,
            "pids_current": item.pids_current, "pids_max": item.pids_max,
            "pids_pressure": item.pids_pressure, "sightings": item.sightings, "confirmed": item.confirmed,
            "protected": item.protected, "decision": item.decision,
            "init": (item.init or {}).get("name"),
            "parents": attribution.parent_summary(item)}


def snapshot(container_list, host_list, summary, now, check_interval):
    """What the metrics and the fleet report need of this scan, kept in the state."""
    return dict({key: summary[key] for key in ("zombies", "host_zombies", "tracked_containers", "confirmed",
                                               "protected", "candidates")},
                time=now, check_interval=check_interval,
                containers_omitted=max(0, len(container_list) - SNAPSHOT_CONTAINERS),
                containers=[_snapshot_container(item) for item in container_list[:SNAPSHOT_CONTAINERS]],
                host_groups=[{"parent": group.parent["name"], "parent_pid": group.parent["pid"],
                              "zombies": group.zombie_count, "sightings": group.sightings}
                             for group in host_list[:SNAPSHOT_CONTAINERS]])


def _summary(container_list, host_list, zombie_total, tracked):
    host_zombie_count = sum(group.zombie_count for group in host_list)
    return {
        "zombies": zombie_total,
        "host_zombies": host_zombie_count,
        "containers_with_zombies": len(container_list),
        "tracked_containers": tracked,
        "confirmed": sum(1 for item in container_list if item.confirmed),
        "protected": sum(1 for item in container_list if item.protected),
        "candidates": sum(1 for item in container_list if item.candidate),
        "runtime_faults": sum(1 for item in container_list if item.runtime_fault),
        "max_pids_pressure": max([item.pids_pressure for item in container_list
                                  if item.pids_pressure is not None] or [None]),
    }


def work_to_cure(containers, host_groups, reap_host_zombies):
    """What a remediation acts on: confirmed, unprotected containers, and, when reap_host_zombies is on,
    confirmed host groups whose parent is not the host's PID 1 (never touched); each with only its
    confirmed zombies (records.Group.cure_fields)."""
    return {
        "containers": [item.to_cure() for item in containers if item.confirmed and not item.protected],
        "host_groups": [group.to_cure() for group in host_groups
                        if group.confirmed and not group.parent_is_host_init]
        if reap_host_zombies else [],
    }


def bounded_view(view):
    """A sighting view (state.sighting_view) as the diff shows it: per entry the count, how many zombies,
    and at most records.SAMPLE_SIZE of their keys."""
    if any(view.values()):
        from ansible.module_utils.zombie_cleaner.observe import records
    return {section: {key: {"count": entry["count"], "zombie_count": len(entry["zombies"]),
                            "zombies": entry["zombies"][:records.SAMPLE_SIZE]}
                      for key, entry in entries.items()}
            for section, entries in view.items()}


@dataclasses.dataclass
class Evaluation:
    """What a scan makes of an observation (evaluate)."""

    state: dict                # the new state
    containers: list           # judged records.ContainerRecord, the most urgent first
    host_groups: list          # judged records.HostGroup, by key
    summary: dict
    changed: bool              # the sightings changed (a zombie new or gone, a count)
    diff: dict                 # {"before", "after"}: the sightings, bounded
    previous_run_age: float    # seconds since this node's previous run, or None
    warnings: list


def evaluate(observation, previous_state, options, now):
    """Pure: this run's sightings, decisions, ranking, summary and diff from an observation and the state
    before it. Reads and writes nothing; the new state lacks only this run's duration (persist adds it)."""
    new = dict(previous_state)
    new["containers"] = state.update_sightings(previous_state["containers"], observation.containers, now,
                                               options.confirm_count, options.check_interval,
                                               lambda record: record.state_identity())
    new["host_groups"] = state.update_sightings(previous_state["host_groups"], observation.host_groups, now,
                                                options.confirm_count, options.check_interval)
    containers = _ranked([judged_container(record, new["containers"][key], options)
                          for key, record in observation.containers.items()])
    host_groups = [judged_host_group(group, new["host_groups"][key])
                   for key, group in sorted(observation.host_groups.items())]
    summary = dict(_summary(containers, host_groups, observation.zombie_count, len(new["containers"])),
                   node_pids_pressure=observation.node_pids["pressure"])
    new.update(last_run=now, boot_id=observation.boot_id,
               last_scan=dict(snapshot(containers, host_groups, summary, now, options.check_interval),
                              node_pids=observation.node_pids),
               history=state.keep_recent(previous_state.get("history"), {
                   "time": now, "zombies": summary["zombies"], "host_zombies": summary["host_zombies"],
                   "containers": summary["containers_with_zombies"], "confirmed": summary["confirmed"],
                   "candidates": summary["candidates"]}, state.HISTORY_LENGTH))
    before, after = state.sighting_view(previous_state), state.sighting_view(new)
    previous_run = previous_state.get("last_run")
    gap = now - previous_run if previous_run else None
    warning = schedule_gap_warning(gap, options.check_interval, options.confirm_count)
    return Evaluation(new, containers, host_groups, summary, before != after,
                      {"before": bounded_view(before), "after": bounded_view(after)}, gap,
                      [warning] if warning else [])


def persist(options, verdict, check_seconds, check_mode, warnings):
    """The new state (with this run's duration) and the metrics textfile, under the state lock: a
    remediation run's textfile never overtakes this one. Returns the textfile's path, or None."""
    verdict.state["histogram"] = metrics.observe(verdict.state.get("histogram"), check_seconds)
    if check_mode:
        return None
    state.save(options.state_path, verdict.state)
    metrics_path, problem = metrics.publish(options.metrics_textfile_dir, verdict.state)
    if problem:
        warnings.append(problem)
    return metrics_path


def publish_audit(options, verdict, previous_state, now, warnings):
    """The sightings and confirmations into the audit log (after the lock: a slow disk holds no other run)."""
    try:
        options.audit_log.write(audit.sighting_records(verdict.containers, verdict.host_groups, previous_state,
                                                       options.confirm_count, options.audit_log.min_level, now))
    except OSError as error:
        warnings.append("audit log %s not written: %s" % (options.audit_log.path, error))


def run_scan(options, check_mode=False, now=None):
    """Scan the node and update its sighting state (unless check_mode). Returns the result dict."""
    started = time.monotonic()
    now = now if now is not None else time.time()
    # In check mode nothing is created, but a state directory others could write to is refused all the same.
    state.prepare_directory(options.state_path, create=not check_mode)
    seen = observe(options)
    lock = state.Lock(options.state_path, options.process_timeout) if not check_mode else contextlib.nullcontext()
    with lock:
        previous, warnings = state.load(options.state_path, seen.boot_id, move_corrupt=not check_mode, now=now)
        verdict = evaluate(seen, previous, options, now)
        check_seconds = time.monotonic() - started
        metrics_path = persist(options, verdict, check_seconds, check_mode, warnings)
    if not check_mode:
        publish_audit(options, verdict, previous, now, warnings)
    return scan_result(options, seen, verdict, dict(check_seconds=check_seconds, metrics_path=metrics_path,
                                                    warnings=warnings + verdict.warnings))


def scan_result(options, seen, verdict, run):
    """zombie_scan's result (RETURN), of a size that grows with containers and parent groups, not zombies."""
    gap = verdict.previous_run_age
    return {
        "changed": verdict.changed,
        "report": report_lines(verdict.containers, verdict.host_groups, seen.node_pids),
        "boot_id": seen.boot_id,
        # The node's own name for itself (inventory names often differ).
        "node": socket.gethostname(),
        "state_path": options.state_path,
        "metrics_path": run["metrics_path"],
        "scanned_processes": seen.scanned_processes,
        "node_pids": seen.node_pids,
        "scan_seconds": round(seen.seconds, 6),
        "check_seconds": round(run["check_seconds"], 6),
        "zombie_count": seen.zombie_count,
        "container_zombie_count": seen.zombie_count - verdict.summary["host_zombies"],
        "host_zombie_count": verdict.summary["host_zombies"],
        "containers": [item.to_result() for item in verdict.containers],
        "host_groups": [group.to_result() for group in verdict.host_groups],
        "vm_sandboxes": seen.vm_sandboxes,
        "candidates": [item.container_id for item in verdict.containers if item.candidate],
        "to_cure": work_to_cure(verdict.containers, verdict.host_groups, options.reap_host_zombies),
        # The cure-loop brake's history (cure/guardrails.py, bounded there): the controller's fleet budget leaves
        # out what the brake will hold back, so a recurring workload never takes a place in it.
        "cure_history": verdict.state.get("cure_history") or {},
        "previous_run_age_seconds": round(gap, 3) if gap is not None else None,
        "warnings": run["warnings"],
        "summary": verdict.summary,
        "diff": verdict.diff,
    }
