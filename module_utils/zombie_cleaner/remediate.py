# -*- coding: utf-8 -*-
# Copyright: zombie-cleaner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The remediation ladder for confirmed containers, least disruptive first.

reap in place (the non-reaping parent calls wait4 through ptrace: no
downtime) -> restart (through the runtime) -> SIGKILL the container's init ->
SIGKILL the shim (last resort). Every rung is bounded by container_timeout; every signal
goes to the exact process seen (pid + start time); nothing is done to a
container whose evidence went stale since the scan.
"""

from __future__ import annotations

import signal
import time
from concurrent.futures import ThreadPoolExecutor

from ansible.module_utils.zombie_cleaner import (attribution, audit, cgroups, config, metrics, procfs, procsignal,
                                                 reaper, runtime_cli, runtimes, state)

REAP = "reap_in_place"
RESTART = "restart"
KILL_INIT = "kill_init"
KILL_SHIM = "kill_shim"

RUNG_TEXT = {
    REAP: "make the non-reaping parent call wait4 in place (ptrace)",
    RESTART: "graceful restart through the runtime",
    KILL_INIT: "SIGKILL the container's init",
    KILL_SHIM: "SIGKILL the container's shim",
}


class RemediationOptions:
    def __init__(self, proc_root="/proc", state_path="/var/lib/zombie-cleaner/state.json",
                 audit_log=None, metrics_textfile_dir=None, container_timeout="30s",
                 process_timeout="10s", max_concurrent_containers=10, max_remediations_per_run=5,
                 dry_run=False, allow_shim_kill_for_runtime_faults=False, replacement_wait="30s",
                 binaries=None, runtime_files=None, reap_in_place=True, reap_host_zombies=False):
        self.proc_root = proc_root.rstrip("/") or "/"
        self.state_path = state_path
        self.audit_log = audit_log or audit.AuditLog(None)
        self.metrics_textfile_dir = metrics_textfile_dir
        self.container_timeout = config.parse_duration("container_timeout", container_timeout)
        self.process_timeout = config.parse_duration("process_timeout", process_timeout)
        self.replacement_wait = config.parse_duration("replacement_wait", replacement_wait)
        self.max_concurrent = config.positive_int("max_concurrent_containers", max_concurrent_containers)
        self.max_per_run = config.positive_int("max_remediations_per_run", max_remediations_per_run)
        self.dry_run = bool(dry_run)
        self.allow_shim_kill_for_runtime_faults = bool(allow_shim_kill_for_runtime_faults)
        self.binaries = binaries or {}
        self.reap_in_place = bool(reap_in_place)
        self.reap_host_zombies = bool(reap_host_zombies)
        self.runtime_files = runtime_files or {}


def ladder(record, options):
    """The rungs that may be tried for this container, or (None, reason) if none may."""
    if record.get("protected"):
        return None, "protected by the whitelist"
    if not record.get("confirmed"):
        return None, "not confirmed"
    if not record.get("shim"):
        return None, "no shim found: the container's runtime process is unknown"
    classes = record.get("parent_classes") or []
    if attribution.APPLICATION in classes:
        return ([REAP] if options.reap_in_place else []) + [RESTART, KILL_INIT, KILL_SHIM], None
    if attribution.RUNTIME in classes:
        if options.allow_shim_kill_for_runtime_faults:
            return [KILL_SHIM], None
        return None, ("runtime fault: zombies held by %s itself; a restart of the application will not cure it "
                      "(allow_shim_kill_for_runtime_faults permits the shim rung)" % record["shim"]["binary"])
    return None, "zombies held by a host process: not the container's to cure"


def reverify(proc_root, record):
    """(live zombies, None) or (None, why the evidence is stale).

    The shim must still be a shim (by its flags, not its name) and the init its
    child: a record pointing anywhere else is never acted on.
    """
    for role in ("shim", "init"):
        seen = record.get(role)
        if not seen:
            continue
        stat = procfs.read_stat(proc_root, seen["pid"])
        # An exited shim or init lingers as a zombie until reaped: not the live process seen.
        exited = stat is not None and stat.state == "Z" and not (role == "init" and record.get("init_is_zombie"))
        if stat is None or stat.start_time != seen["start_time"] or exited:
            return None, "the container's %s (pid %d) is no longer the process seen" % (role, seen["pid"])
        if role == "shim" and not runtimes.identify_shim(procfs.read_cmdline(proc_root, seen["pid"])):
            return None, "pid %d is not a container shim" % seen["pid"]
        if role == "init" and record.get("shim") and stat.ppid != record["shim"]["pid"]:
            return None, "pid %d is not a child of the container's shim" % seen["pid"]
    alive = procfs.alive_zombies(proc_root, record["zombies"])
    if not alive:
        return None, "its zombies are gone since the scan"
    return alive, None


def _wait_cured(proc_root, zombies, timeout):
    deadline = time.monotonic() + timeout
    while True:
        alive = procfs.alive_zombies(proc_root, zombies)
        if not alive or time.monotonic() >= deadline:
            return alive
        time.sleep(0.05)


def _identity(record):
    return {key: record.get(key) for key in ("container_id", "runtime", "namespace", "pod", "container_name",
                                             "name", "pod_uid")}


class Remediator:
    def __init__(self, options, files=None):
        self.options = options
        self.files = files

    def plan(self, record):
        rungs, reason = ladder(record, self.options)
        zombies = record.get("zombies") or []
        outcome = dict(_identity(record), zombies_before=len(zombies), rungs=[], timeouts=0,
                       parents=attribution.parent_summary(record),
                       zombie=zombies[0] if zombies else None, zombie_pids=[item["pid"] for item in zombies])
        if rungs is None:
            outcome.update(result="skipped", reason=reason)
            if record.get("confirmed") and attribution.RUNTIME in (record.get("parent_classes") or []):
                runtime = runtime_cli.for_record(record, self.options.binaries)
                outcome["runtime_fault"] = True
                outcome["runtime_version"] = runtime.version() if runtime else None
        return rungs, outcome

    def remediate(self, record, check_mode=False):
        started = time.monotonic()
        rungs, outcome = self.plan(record)
        if rungs is None:
            return outcome
        alive, stale = reverify(self.options.proc_root, record)
        if stale:
            outcome.update(result="stale", reason=stale)
            return outcome
        outcome["zombies_before"] = len(alive)
        if record.get("shim_shared"):
            outcome["shim_note"] = ("this shim serves the whole pod sandbox %s: killing it stops every container "
                                    "of the pod" % record["shim"]["id"])
        runtime = runtime_cli.for_record(record, self.options.binaries)
        if not (check_mode or self.options.dry_run) and not procfs.is_live(self.options.proc_root):
            outcome.update(result="skipped", reason="proc_root %s is not this system's live /proc: nothing is "
                                                    "acted on from a copy" % self.options.proc_root)
            return outcome
        if check_mode or self.options.dry_run:
            outcome.update(result="would_remediate", reason="dry run" if self.options.dry_run else "check mode",
                           plan=[self._describe(rung, record, runtime, alive) for rung in rungs])
            return outcome
        for rung in rungs:
            step = self._run_rung(rung, record, runtime, alive)
            outcome["rungs"].append(step)
            outcome["timeouts"] += step["timeouts"]
            if not step["ok"]:
                continue
            left = _wait_cured(self.options.proc_root, alive, min(5.0, self.options.container_timeout))
            if left:
                step["ok"] = False
                step["detail"] += "; %d zombies still there" % len(left)
                continue
            outcome["rung"] = rung
            break
        outcome["zombies_after"] = len(procfs.alive_zombies(self.options.proc_root, alive))
        if "rung" not in outcome:
            outcome.update(result="failed", reason="every rung failed; zombies still there")
        elif outcome["rung"] == REAP:
            step = outcome["rungs"][-1]
            outcome.update(result="reaped_in_place", stop_seconds=step["stop_seconds"],
                           reason="zombies reaped by their parent in place; the parent was stopped for %.3f ms, "
                                  "the container kept running" % (step["stop_seconds"] * 1000))
        else:
            self._verify_workload(record, runtime, outcome)
        outcome["seconds"] = round(time.monotonic() - started, 3)
        return outcome

    def reap_host(self, group, check_mode=False):
        """Host zombies of an ordinary host process: reap in place or leave them (never a restart)."""
        outcome = host_outcome(group)
        parent = group["parent"]
        if not group.get("confirmed"):
            outcome.update(result="skipped", reason="not confirmed")
            return outcome
        if group.get("parent_is_host_init") or parent["pid"] <= 1:
            outcome.update(result="skipped", reason="the host's init is the parent: not ours to touch")
            return outcome
        alive = procfs.alive_zombies(self.options.proc_root, group["zombies"])
        if not alive:
            outcome.update(result="stale", reason="its zombies are gone since the scan")
            return outcome
        dry_run = check_mode or self.options.dry_run
        # reaper.reap refuses a proc_root that is not the live /proc itself.
        result = reaper.reap(self.options.proc_root, parent, alive, self.options.process_timeout, dry_run)
        if dry_run:
            outcome.update(result="would_remediate" if result["ok"] else "skipped", reason=result["reason"],
                           plan=[{"rung": REAP, "action": RUNG_TEXT[REAP], "safe": result["ok"],
                                  "verdicts": [result]}])
            return outcome
        outcome["rungs"].append({"rung": REAP, "ok": result["ok"], "timeouts": 0, "detail": result["reason"],
                                 "stop_seconds": result["stop_seconds"], "parents": [result]})
        outcome["zombies_after"] = len(procfs.alive_zombies(self.options.proc_root, alive))
        if result["ok"]:
            outcome.update(result="reaped_in_place", rung=REAP, stop_seconds=result["stop_seconds"],
                           reason=result["reason"])
        else:
            outcome.update(result="skipped" if result["verdict"] == "skipped" else "failed", reason=result["reason"])
        return outcome

    def _reap(self, record, zombies, dry_run):
        """reaper.reap for every application parent of these zombies: [result per parent]."""
        parents = {parent["pid"]: parent for parent in record.get("parents") or []
                   if parent.get("parent_class") == attribution.APPLICATION}
        by_parent = {}
        for zombie in zombies:
            if zombie["ppid"] in parents:
                by_parent.setdefault(zombie["ppid"], []).append(zombie)
        return [reaper.reap(self.options.proc_root, parents[pid], group, self.options.process_timeout, dry_run)
                for pid, group in sorted(by_parent.items())]

    def _describe(self, rung, record, runtime, zombies):
        if rung == REAP:
            results = self._reap(record, zombies, dry_run=True)
            verdicts = ["%s[%s]: %s%s" % (item["parent"].get("name"), item["parent"]["pid"], item["reason"],
                                          "; seccomp %s" % "/".join(item["seccomp"]) if item["seccomp"] else "")
                        for item in results]
            safe = bool(results) and all(item["ok"] for item in results)
            return {"rung": rung, "action": "%s%s (%s)" % (RUNG_TEXT[REAP], "" if safe else ": not safe, skipped",
                                                           "; ".join(verdicts) or "no application parent"),
                    "safe": safe, "verdicts": results}
        target = {
            RESTART: "%s via %s" % (RUNG_TEXT[RESTART], runtime.name if runtime else "no supported runtime CLI"),
            KILL_INIT: "%s %s[%s]" % (RUNG_TEXT[KILL_INIT], (record.get("init") or {}).get("name"),
                                      (record.get("init") or {}).get("pid")),
            KILL_SHIM: "%s %s[%s]" % (RUNG_TEXT[KILL_SHIM], record["shim"]["binary"], record["shim"]["pid"]),
        }[rung]
        return {"rung": rung, "action": target}

    def _run_rung(self, rung, record, runtime, zombies):
        started = time.monotonic()
        step = {"rung": rung, "ok": False, "timeouts": 0, "detail": ""}
        if rung == REAP:
            results = self._reap(record, zombies, dry_run=False)
            step["parents"] = results
            step["ok"] = bool(results) and all(item["ok"] for item in results)
            step["stop_seconds"] = max([item["stop_seconds"] or 0.0 for item in results] or [0.0])
            step["reaped"] = sum(len(item["reaped"]) for item in results)
            step["detail"] = "; ".join("%s[%s]: %s" % (item["parent"].get("name"), item["parent"]["pid"],
                                                       item["reason"]) for item in results) or "no application parent"
            if step["ok"] and record.get("init") and not procsignal.is_same_process(
                    self.options.proc_root, record["init"]["pid"], record["init"]["start_time"]):
                step.update(ok=False, detail=step["detail"] + "; but the container's init changed")
        elif rung == RESTART:
            if runtime is None:
                step["detail"] = "no runtime adapter for %s" % record.get("runtime")
            else:
                results = runtime.graceful_restart(record, self.options.container_timeout)
                step["timeouts"] = sum(1 for item in results if item.timed_out)
                step["ok"] = all(item.ok for item in results)
                step["detail"] = "; ".join(item.describe() for item in results)
                step["restarted"] = step["ok"]
        else:
            target = record.get("init") if rung == KILL_INIT else record.get("shim")
            if rung == KILL_INIT and record.get("init_is_zombie"):
                step["detail"] = "the init is itself a zombie: nothing to kill"
            elif not target:
                step["detail"] = "no %s process known" % ("init" if rung == KILL_INIT else "shim")
            else:
                step.update(self._kill(target))
        step["seconds"] = round(time.monotonic() - started, 3)
        return step

    def _kill(self, target):
        try:
            how = procsignal.send_exact(self.options.proc_root, target["pid"], target["start_time"], signal.SIGKILL)
        except procsignal.Refused as refused:
            return {"ok": False, "detail": str(refused)}
        except OSError as error:
            return {"ok": False, "detail": "signal failed: %s" % error}
        gone = procsignal.wait_gone(self.options.proc_root, target["pid"], target["start_time"],
                                    self.options.container_timeout)
        if not gone:
            return {"ok": False, "timeouts": 1, "detail": "SIGKILL sent (%s) to %s[%d]; still there after %.0fs" % (
                how, target["name"], target["pid"], self.options.container_timeout)}
        return {"ok": True, "detail": "SIGKILL sent (%s) to %s[%d]" % (how, target["name"], target["pid"])}

    def _verify_workload(self, record, runtime, outcome):
        """After the zombies are gone: is the workload running again?"""
        rung = outcome["rung"]
        timeout = self.options.container_timeout
        if rung != RESTART and runtime is not None:
            started = runtime.start_again(record, timeout)
            if started is not None:
                outcome["rungs"].append({"rung": "start_again", "ok": all(item.ok for item in started),
                                         "timeouts": sum(1 for item in started if item.timed_out),
                                         "detail": "; ".join(item.describe() for item in started)})
                outcome["timeouts"] += outcome["rungs"][-1]["timeouts"]
        running = runtime.running(record, timeout) if runtime else None
        if running is None and record.get("pod"):
            outcome["replacement"] = self._wait_replacement(record)
            outcome["result"] = "cured"
            outcome["reason"] = ("the kubelet starts a new container" if outcome["replacement"]
                                 else "no new container of the pod seen within %.0fs: the kubelet may still "
                                      "be backing off" % self.options.replacement_wait)
        elif running:
            outcome.update(result="cured", reason="zombies gone, container running again")
        else:
            outcome.update(result="failed", reason="zombies gone but the container is not running again")

    def _wait_replacement(self, record):
        if self.files is None or not record.get("containerd_namespace"):
            return None
        deadline = time.monotonic() + self.options.replacement_wait
        while True:
            found = self.files.find_replacement(record)
            if found or time.monotonic() >= deadline:
                return found
            time.sleep(0.5)


def run_remediation(options, containers, check_mode=False, now=None, host_groups=()):
    """Remediate the given scanned containers (and, if allowed, reap confirmed host groups) on this node."""
    now = now if now is not None else time.time()
    remediator = Remediator(options, runtimes.RuntimeFiles(**options.runtime_files))
    # Closest to failing forks first, then most zombies: the per-run cap defers the least urgent.
    ordered = sorted(containers, key=lambda item: cgroups.pressure_order(item.get("pids_pressure"),
                                                                         item.get("zombie_count"))
                     + (item["container_id"],))
    eligible, outcomes = [], []
    for record in ordered:
        rungs, outcome = remediator.plan(record)
        if rungs is None:
            outcomes.append(outcome)
        elif len(eligible) >= options.max_per_run:
            outcome.update(result="deferred", reason="max_remediations_per_run=%d reached" % options.max_per_run)
            outcomes.append(outcome)
        else:
            eligible.append(record)
    with ThreadPoolExecutor(max_workers=options.max_concurrent) as pool:
        outcomes.extend(pool.map(lambda record: remediator.remediate(record, check_mode), eligible))
    for group in host_groups:
        if not options.reap_host_zombies:
            break
        if len(eligible) >= options.max_per_run:
            outcome = host_outcome(group)
            outcome.update(result="deferred", reason="max_remediations_per_run=%d reached" % options.max_per_run)
        else:
            eligible.append(group)
            outcome = remediator.reap_host(group, check_mode)
        outcomes.append(outcome)
    return _record(options, outcomes, check_mode, now)


def host_outcome(group):
    parent = group["parent"]
    zombies = group.get("zombies") or []
    return {"container_id": group["key"], "runtime": None, "namespace": None, "pod": None, "container_name": None,
            "name": "host %s[%s]" % (parent.get("name"), parent["pid"]), "pod_uid": None,
            "zombies_before": len(zombies), "rungs": [], "timeouts": 0, "zombie": zombies[0] if zombies else None,
            "zombie_pids": [item["pid"] for item in zombies],
            "parents": [{"name": parent.get("name"), "pid": parent["pid"], "parent_class": attribution.HOST,
                         "is_init": False}]}


def _report_line(outcome):
    # Host groups have no runtime; their key (host:<pid>:<start>) says what they are.
    where = "%s %s" % (outcome["runtime"], outcome["container_id"][:12]) if outcome.get("runtime") else outcome["container_id"]
    text = "%s (%s): %s" % (attribution.label(outcome), where, outcome["result"])
    if outcome.get("rung"):
        text += " by %s" % outcome["rung"]
    if outcome.get("plan"):
        text += ": would " + " -> ".join(step["action"] for step in outcome["plan"])
    if outcome.get("reason"):
        text += " (%s)" % outcome["reason"]
    return text


def _remembered(outcome, now):
    """What the fleet report needs of an outcome, kept in the state."""
    return {"time": now, "container_id": outcome["container_id"], "label": attribution.label(outcome),
            "runtime": outcome.get("runtime"), "result": outcome["result"], "rung": outcome.get("rung"),
            "reason": outcome.get("reason"), "zombies_before": outcome["zombies_before"],
            "stop_seconds": outcome.get("stop_seconds"),
            "parents": outcome.get("parents") or []}


def _record(options, outcomes, check_mode, now):
    counts = {name: sum(1 for item in outcomes if item["result"] == name)
              for name in ("reaped_in_place", "cured", "failed", "stale", "skipped", "deferred", "would_remediate")}
    reaped_zombies = sum(item["zombies_before"] - (item.get("zombies_after") or 0) for item in outcomes
                         if item["result"] == "reaped_in_place")
    timeouts = sum(item["timeouts"] for item in outcomes)
    changed = counts["cured"] + counts["reaped_in_place"] + counts["failed"] > 0
    warnings = []
    if not check_mode:
        state.prepare_directory(options.state_path)
        with state.Lock(options.state_path, options.process_timeout):
            current, warnings = state.load(options.state_path, procfs.read_boot_id(options.proc_root), now=now)
            counters = current.setdefault("counters", {})
            for name, value in (("containers_cleaned_total", counts["cured"] + counts["reaped_in_place"]),
                                ("containers_reaped_in_place_total", counts["reaped_in_place"]),
                                ("zombies_reaped_in_place_total", reaped_zombies),
                                ("cleanup_failures_total", counts["failed"]),
                                ("container_operation_timeouts_total", timeouts)):
                counters[name] = counters.get(name, 0) + value
            remembered = current.get("remediations") or []
            for item in outcomes:
                if item["result"] in ("cured", "reaped_in_place"):
                    current["containers"].pop(item["container_id"], None)   # success resets the count
                    current["host_groups"].pop(item["container_id"], None)
                if item["result"] in ("cured", "reaped_in_place", "failed"):
                    remembered = state.keep_recent(remembered, _remembered(item, now), state.REMEDIATIONS_KEPT)
            current["remediations"] = remembered
            state.save(options.state_path, current)
            _, problem = metrics.publish(options.metrics_textfile_dir, current)
            if problem:
                warnings.append(problem)
        try:
            options.audit_log.write(audit.outcome_records(outcomes, now))
        except OSError as error:
            warnings.append("audit log %s not written: %s" % (options.audit_log.path, error))
    return {
        "changed": changed or (check_mode and counts["would_remediate"] > 0),
        "report": [_report_line(item) for item in outcomes],
        "outcomes": outcomes,
        "summary": dict(counts, timeouts=timeouts),
        "dry_run": options.dry_run,
        "node_warnings": warnings,
    }
