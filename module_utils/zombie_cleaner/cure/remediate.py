# -*- coding: utf-8 -*-
# Copyright: zombie-cleaner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The remediation ladder for confirmed containers, least disruptive first.

reap in place (the non-reaping parent calls wait4 through ptrace: no
downtime) -> restart (through the runtime) -> SIGKILL the container's init ->
SIGKILL the shim (last resort), each rung an object of cure/rungs.py. Every rung is bounded by
container_timeout; every signal goes to the exact process seen (pid + start time); nothing is done to a
container whose evidence went stale since the scan. Each container's outcome is a cure/outcomes.Outcome.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor

from ansible.module_utils.zombie_cleaner import config, module_args, waiter
from ansible.module_utils.zombie_cleaner.cure import guardrails, reaper, rungs, runtime_cli
from ansible.module_utils.zombie_cleaner.cure.outcomes import (CURED, DEFERRED, FAILED, REAPED, SKIPPED, STALE,
                                                              WOULD, Outcome, remembered, report_line)
from ansible.module_utils.zombie_cleaner.observe import attribution, cgroups, procfs, runtimes, trust
from ansible.module_utils.zombie_cleaner.record import atomicfile, audit, metrics, state

REAP, RESTART, KILL_INIT, KILL_SHIM = rungs.REAP, rungs.RESTART, rungs.KILL_INIT, rungs.KILL_SHIM
RUNG_TEXT = {rung.name: rung.text for rung in rungs.LADDER}
shim_kill_problem = rungs.shim_kill_problem

# Held back by the cure-loop brake (cure/guardrails.py): cured too often within cure_window.
RECURRING = guardrails.RECURRING
RESULTS = (REAPED, CURED, FAILED, STALE, SKIPPED, DEFERRED, RECURRING, WOULD)

# Where a record's container id came from: only the runtime's own root-owned state may name what we act on.
TRUSTED_ID_SOURCES = ("bundle", "conmon")


class RemediationOptions:
    """Validated remediation settings: zombie_remediate's parameters, with the defaults of its argument spec
    (module_args.REMEDIATE_ARGUMENT_SPEC). Raises config.ConfigError on the first bad one.

    from_params takes the module's params. Built by name (tests), the node's outputs are off unless given:
    audit_log (an audit.AuditLog, or audit_log_path and its settings) and metrics_textfile_dir; binaries
    ({"docker": path, ...}) and runtime_files ({name: directory}) may stand for the *_bin and directory
    parameters."""

    def __init__(self, audit_log=None, binaries=None, runtime_files=None, guard=None, **given):
        given = dict(given, **(runtime_files or {}))
        given.update(("%s_bin" % name, path) for name, path in (binaries or {}).items())
        params = module_args.settings(module_args.REMEDIATE_ARGUMENT_SPEC, given, off=module_args.NODE_OUTPUTS)
        self.proc_root = params["proc_root"].rstrip("/") or "/"
        self.state_path = params["state_path"]
        self.audit_log = audit_log or module_args.audit_log(params)
        self.metrics_textfile_dir = params["metrics_textfile_dir"] or None
        self.container_timeout = config.parse_duration("container_timeout", params["container_timeout"])
        self.process_timeout = config.parse_duration("process_timeout", params["process_timeout"])
        self.replacement_wait = config.parse_duration("replacement_wait", params["replacement_wait"])
        self.max_concurrent = config.positive_int("max_concurrent_containers", params["max_concurrent_containers"])
        self.max_per_run = config.positive_int("max_remediations_per_run", params["max_remediations_per_run"])
        self.dry_run = bool(params["dry_run"])
        self.allow_shim_kill_for_runtime_faults = bool(params["allow_shim_kill_for_runtime_faults"])
        self.allow_pod_shim_kill = bool(params["allow_pod_shim_kill"])
        self.binaries = module_args.binaries(params)
        self.reap_in_place = bool(params["reap_in_place"])
        self.reap_host_zombies = bool(params["reap_host_zombies"])
        self.runtime_files = module_args.runtime_files(params)
        # The pause file, the cure-loop brake and the controller's holds (cure/guardrails.py).
        self.guardrails = guard or guardrails.GuardrailOptions(**(params.get("guardrails") or {}))

    @classmethod
    def from_params(cls, params):
        """From the zombie_remediate module's params (every key of its spec; the records to act on are not
        settings)."""
        return cls(**{name: value for name, value in params.items() if name not in ("containers", "host_groups")})

    def run_budget(self):
        """The longest a whole remediation run on this node may take (config.remediation_seconds)."""
        return config.remediation_seconds(self.container_timeout, self.process_timeout, self.replacement_wait,
                                          self.max_per_run, self.max_concurrent)

    def ladder_budget(self, ladder_rungs):
        """The longest one container's ladder may take: every rung bounded, plus the waits between."""
        return len(ladder_rungs) * (self.container_timeout + CURE_WAIT) + self.replacement_wait


# After a rung, how long its cure may take to show (zombies reaped by the new parent, restart settling).
CURE_WAIT = 5.0
CURE_WAIT_AFTER_FAILURE = 1.0


def refusal(record):
    """Why nothing may be done to this container at all, or None."""
    if record.get("protected"):
        return "protected by the whitelist"
    if record.get("identity_unknown"):
        return "identity unknown: %s" % record["identity_unknown"]
    if not record.get("confirmed"):
        return "not confirmed"
    if not record.get("shim"):
        return "no shim found: the container's runtime process is unknown"
    if record.get("id_source") not in TRUSTED_ID_SOURCES:
        return ("identity unverified: container id from %s, not from the runtime's own state"
                % (record.get("id_source") or "nowhere"))
    return None


def ladder(record, options):
    """The rungs that may be tried for this container, or (None, reason) if none may."""
    refused = refusal(record)
    if refused:
        return None, refused
    classes = record.get("parent_classes") or []
    if set(attribution.CURABLE) & set(classes):
        return [rung.name for rung in rungs.LADDER if rung.offered(record, options)], None
    if attribution.RUNTIME in classes:
        if not options.allow_shim_kill_for_runtime_faults:
            return None, ("runtime fault: zombies held by %s itself; a restart of the application will not cure "
                          "it (allow_shim_kill_for_runtime_faults permits the shim rung)" % record["shim"]["binary"])
        shim_problem = shim_kill_problem(record, options)
        if shim_problem:
            return None, "runtime fault, and %s" % shim_problem
        return [KILL_SHIM], None
    return None, "zombies held by a host process: not the container's to cure"


def reverify(proc_root, record, files=None):
    """(live zombies, None) or (None, why the evidence is stale).

    The shim must still be the root-owned shim seen (by its flags and its
    executable, not its name), the init its child, and, when files are given,
    the runtime's state must still tie the init to this container."""
    for role in ("shim", "init"):
        seen = record.get(role)
        if not seen:
            continue
        stat = procfs.read_stat(proc_root, seen["pid"])
        # An exited shim or init lingers as a zombie until reaped: not the live process seen.
        exited = procfs.is_zombie(stat) and not (role == "init" and record.get("init_is_zombie"))
        if stat is None or stat.start_time != seen["start_time"] or exited:
            return None, "the container's %s (pid %d) is no longer the process seen" % (role, seen["pid"])
        if role == "shim" and not runtimes.identify_shim(procfs.read_cmdline(proc_root, seen["pid"])):
            return None, "pid %d is not a container shim" % seen["pid"]
        if role == "shim" and trust.runtime_process_problem(proc_root, seen["pid"]):
            return None, "shim pid %d is not believed: %s" % (seen["pid"], trust.runtime_process_problem(
                proc_root, seen["pid"]))
        if role == "init" and record.get("shim") and stat.ppid != record["shim"]["pid"]:
            return None, "pid %d is not a child of the container's shim" % seen["pid"]
    if files is not None:
        problem = _state_problem(record, files)
        if problem:
            return None, problem
    alive = procfs.alive_zombies(proc_root, record["zombies"])
    if not alive:
        return None, "its zombies are gone since the scan"
    return alive, None


def _state_problem(record, files):
    """Why the runtime's own state no longer ties this init to this container, or None."""
    shim, init = record.get("shim") or {}, record.get("init") or {}
    if shim.get("kind") == "conmon":
        conmon_pid, _ = files.conmon_pids(record.get("runtime"), record["container_id"])
        if conmon_pid != shim.get("pid"):
            return "no root-owned conmon pid file of %s names pid %s any more" % (record["container_id"],
                                                                                 shim.get("pid"))
        return None
    if not record.get("containerd_namespace"):
        return "no containerd namespace is known for %s" % record["container_id"]
    named = files.containerd_init_pids(record["containerd_namespace"]).get(init.get("pid"))
    if named != record["container_id"]:
        return "the runtime's bundle no longer names pid %s as the init of %s" % (init.get("pid"),
                                                                                  record["container_id"])
    return None


def _wait_cured(proc_root, zombies, timeout):
    """The zombies still there once they are all gone or timeout seconds have passed."""
    left = [zombies]

    def cured():
        left[0] = procfs.alive_zombies(proc_root, left[0])
        return not left[0]
    waiter.poll_until(cured, timeout, 0.05)
    return left[0]


def action_record(phase, rung, record, zombies, step=None):
    """The audit line written right before (phase "start") and right after ("end") one rung."""
    if step is None:
        return audit.line("info", "remediation action starting: %s" % RUNG_TEXT[rung], record,
                          zombies[0] if zombies else None, action="remediate_step", phase=phase, rung=rung,
                          zombie_pids=[item["pid"] for item in zombies])
    return audit.line("info" if step["ok"] else "warning", "remediation action %s: %s" % (
        "done" if step["ok"] else "did not succeed", step["detail"]), record, zombies[0] if zombies else None,
        action="remediate_step", phase=phase, rung=rung, ok=step["ok"], seconds=step.get("seconds"))


class Remediator:
    def __init__(self, options, files=None, run_deadline=None):
        self.options = options
        self.files = files
        # No rung starts, and no runtime command runs, past the whole run's bound (the role's task time limit
        # is derived from the same settings, with room to report).
        self.run_deadline = run_deadline if run_deadline is not None else time.monotonic() + options.run_budget()

    def plan(self, record):
        """(the names of the rungs to try, or None, and the container's Outcome so far)."""
        names, reason = ladder(record, self.options)
        outcome = Outcome.of_record(record)
        if names is None:
            outcome.update(result=SKIPPED, reason=reason)
            if record.get("confirmed") and attribution.RUNTIME in (record.get("parent_classes") or []):
                runtime = runtime_cli.for_record(record, self.options.binaries)
                outcome.update(runtime_fault=True, runtime_version=runtime.version() if runtime else None)
        return names, outcome

    def remediate(self, record, check_mode=False):
        """One container's Outcome. Never raises: a surprise in one container (a file name that is not
        UTF-8, a runtime that answers nonsense) is that container's failure, recorded with the rest."""
        started = time.monotonic()
        names, outcome = self.plan(record)
        try:
            if names is not None:
                self._climb(record, [rungs.RUNGS[name] for name in names], outcome, check_mode)
        except Exception as error:  # pylint: disable=broad-except
            outcome.update(result=FAILED, reason="unexpected error: %s: %s" % (type(error).__name__, error))
        outcome.seconds = round(time.monotonic() - started, 3)
        return outcome

    def _climb(self, record, ladder_rungs, outcome, check_mode):
        alive, stale = reverify(self.options.proc_root, record, self.files)
        if stale:
            outcome.update(result=STALE, reason=stale)
            return
        outcome.zombies_before = len(alive)
        if record.get("shim_shared"):
            outcome.shim_note = ("this shim serves the whole pod sandbox %s: killing it stops every container "
                                 "of the pod" % record["shim"]["id"])
        runtime = runtime_cli.for_record(record, self.options.binaries)
        if check_mode or self.options.dry_run:
            outcome.update(result=WOULD, reason="dry run" if self.options.dry_run else "check mode",
                           plan=[rung.describe(self, record, runtime, alive) for rung in ladder_rungs])
            return
        if not procfs.is_live(self.options.proc_root):
            outcome.update(result=SKIPPED, reason="proc_root %s is not this system's live /proc: nothing is "
                                                  "acted on from a copy" % self.options.proc_root)
            return
        deadline = min(time.monotonic() + self.options.ladder_budget(ladder_rungs), self.run_deadline)
        step = self._steps(record, ladder_rungs, runtime, alive, outcome, deadline)
        left = procfs.alive_zombies(self.options.proc_root, alive)
        outcome.zombies_after = len(left)
        if left:
            outcome.update(result=outcome.result or FAILED,
                           reason=outcome.reason or "every rung failed; zombies still there")
        elif step is None:
            outcome.update(result=STALE, reason="its zombies went away before any action")
        else:
            # The zombies are gone after this rung: a cure, even if the rung itself complained.
            outcome.rung = step["rung"]
            if not step["ok"]:
                outcome.complaint = step["detail"]
            rungs.RUNGS[step["rung"]].cured(self, record, runtime, outcome, step, deadline)

    def _steps(self, record, ladder_rungs, runtime, alive, outcome, deadline):
        """Climb until the zombies are gone or a rung must not be climbed: the last step taken, or None."""
        step = None
        for rung in ladder_rungs:
            # The world changes between rungs: once the zombies are gone, the ladder stops.
            left = procfs.alive_zombies(self.options.proc_root, alive)
            if not left:
                break
            why_not = self._why_not_climb(rung, step, deadline)
            if why_not:
                outcome.update(result=FAILED, reason=why_not)
                break
            step = self._audited_rung(rung, record, runtime, left, outcome, deadline)
            procfs_wait = CURE_WAIT if step["ok"] else CURE_WAIT_AFTER_FAILURE
            _wait_cured(self.options.proc_root, left, min(procfs_wait, self.options.container_timeout))
        return step

    @staticmethod
    def _why_not_climb(rung, previous, deadline):
        if previous is not None and (previous.get("refused") or previous.get("left_attached")):
            return previous["detail"]
        if time.monotonic() > deadline:
            return "the remediation's deadline passed before %s" % rung.name
        return rung.refusal(previous)

    def _audited_rung(self, rung, record, runtime, zombies, outcome, deadline):
        """Run one rung with an audit line before and after it. Without a record, nothing is done."""
        try:
            self.options.audit_log.write([action_record("start", rung.name, record, zombies)])
        except OSError as error:
            step = {"rung": rung.name, "ok": False, "timeouts": 0, "refused": True,
                    "detail": "audit log %s not writable (%s): nothing is done without a record"
                              % (self.options.audit_log.path, error)}
        else:
            step = rung.step(self, record, runtime, zombies, deadline)
            try:
                self.options.audit_log.write([action_record("end", rung.name, record, zombies, step)])
            except OSError as error:
                step["audit_problem"] = str(error)
        outcome.rungs.append(step)
        outcome.timeouts += step["timeouts"]
        if step.get("left_attached"):
            outcome.left_attached = True
        return step

    def reap_host(self, group, check_mode=False):
        """Host zombies of an ordinary host process: reap in place or leave them (never a restart).

        Also where zombies of an unverified identity go: their parent may be reaped in place like any
        host process, never killed, and the container they claim is never named to a runtime."""
        outcome = host_outcome(group)
        try:
            self._reap_host(group, outcome, check_mode)
        except Exception as error:  # pylint: disable=broad-except
            outcome.update(result=FAILED, reason="unexpected error: %s: %s" % (type(error).__name__, error))
        return outcome

    def _reap_host(self, group, outcome, check_mode):
        parent = group["parent"]
        if not group.get("confirmed"):
            outcome.update(result=SKIPPED, reason="not confirmed")
            return
        if group.get("parent_is_host_init") or parent["pid"] <= 1:
            outcome.update(result=SKIPPED, reason="the host's init is the parent: not ours to touch")
            return
        alive = procfs.alive_zombies(self.options.proc_root, group["zombies"])
        if not alive:
            outcome.update(result=STALE, reason="its zombies are gone since the scan")
            return
        if check_mode or self.options.dry_run:
            # reaper.reap refuses a proc_root that is not the live /proc itself.
            result = reaper.reap(self.options.proc_root, parent, alive, self.options.process_timeout, True)
            outcome.update(result=WOULD if result["ok"] else SKIPPED, reason=result["reason"],
                           plan=[{"rung": REAP, "action": RUNG_TEXT[REAP], "safe": result["ok"],
                                  "verdicts": [result]}])
            return
        record = dict(group, container_id=group["key"], parents=[dict(parent, parent_class=attribution.APPLICATION)])
        step = self._audited_rung(rungs.RUNGS[REAP], record, None, alive, outcome,
                                  time.monotonic() + self.options.process_timeout)
        left = procfs.alive_zombies(self.options.proc_root, alive)
        outcome.zombies_after = len(left)
        if not left:
            outcome.update(result=REAPED, rung=REAP, stop_seconds=step.get("stop_seconds"), reason=step["detail"])
            if not step["ok"]:
                outcome.complaint = step["detail"]
        else:
            skipped = not step["ok"] and all(item.get("verdict") == "skipped" for item in step.get("parents") or [{}])
            outcome.update(result=SKIPPED if skipped else FAILED, reason=step["detail"])

    def verify_workload(self, record, runtime, outcome, deadline, start_again):
        """After the zombies are gone: is the workload running again? start_again: the rung stopped it
        (a kill), so the runtime starts it again where the kubelet does not."""
        timeout = self.options.container_timeout
        if start_again and runtime is not None:
            started = runtime.start_again(record, timeout, deadline)
            if started is not None:
                outcome.rungs.append({"rung": "start_again", "ok": all(item.ok for item in started),
                                      "timeouts": sum(1 for item in started if item.timed_out),
                                      "detail": "; ".join(item.describe() for item in started)})
                outcome.timeouts += outcome.rungs[-1]["timeouts"]
        running = runtime.running(record, timeout, deadline) if runtime else None
        if running is None and record.get("pod"):
            # The kubelet's job: a new container of the same pod and name (attempt + 1) in the same sandbox.
            outcome.update(result=CURED, replacement=self._wait_replacement(record))
            if outcome.replacement:
                outcome.reason = "zombies gone; the kubelet started %s (attempt %s)" % (
                    outcome.replacement["container_id"][:12], outcome.replacement["attempt"])
            else:
                outcome.reason = "zombies gone; the kubelet is to start the container again"
                outcome.warning = ("%s: no new container of the pod seen within replacement_wait (%.0fs): the "
                                   "kubelet may still be backing off; look at the pod if it stays down"
                                   % (attribution.label(record), self.options.replacement_wait))
        elif running:
            outcome.update(result=CURED, reason="zombies gone, container running again")
        else:
            outcome.update(result=FAILED, reason="zombies gone but the container is not running again")

    def _wait_replacement(self, record):
        if self.files is None or not record.get("containerd_namespace"):
            return None
        found = waiter.poll_until(lambda: self.files.find_replacement(record), self.options.replacement_wait, 0.5)
        return {"container_id": found, "attempt": self.files.latest_attempt(record)} if found else None


def run_remediation(options, containers, check_mode=False, now=None, host_groups=()):
    """Remediate the given scanned containers (and, if allowed, reap confirmed host groups) on this node.

    The state lock is taken before anything is done and held until every outcome is recorded: a run that
    cannot have it acts on nothing (state.LockBusy)."""
    now = now if now is not None else time.time()
    if check_mode:
        lock = contextlib.nullcontext()
    else:
        state.prepare_directory(options.state_path)
        lock = state.Lock(options.state_path, options.process_timeout)
    with lock:
        # Read once, under the lock: the confirmed zombies a scan's result only samples, and the cure history.
        current, _ = state.load(options.state_path, procfs.read_boot_id(options.proc_root), move_corrupt=False,
                                now=now)
        containers = [with_confirmed_zombies(record, current["containers"].get(record.get("container_id")),
                                             options.proc_root) for record in containers]
        host_groups = [with_confirmed_zombies(group, current["host_groups"].get(group.get("key")), options.proc_root)
                       for group in host_groups]
        guard = _guard(options, now, current)
        outcomes = _act(options, containers, host_groups, check_mode, guard)
        return _record(options, outcomes, check_mode, now, guard)


def with_confirmed_zombies(record, entry, proc_root):
    """The record with every confirmed zombie it names in "zombies", as they are now in /proc.

    A scan's result lists at most a sample of them (records.SAMPLE_SIZE; confirmed_zombies counts them all).
    The rest are named by the node's own state: this group's zombies first seen no later than
    confirmed_until, exactly the scan's confirmed set (state.first_seen_until). Zombies marked unconfirmed
    are never acted on. In check mode the state is the previous run's: it names them too, except zombies
    confirmed at first sight (confirm_count 1), of which the sample is what there is."""
    listed = [zombie for zombie in record.get("zombies") or [] if zombie.get("confirmed", True)]
    sampled = (record.get("confirmed_zombies") or 0) > len(listed) and record.get("confirmed_until") is not None
    if sampled and entry:
        known = {state.zombie_key(zombie) for zombie in listed}
        found = (_zombie_now(proc_root, key) for key in state.first_seen_until(entry, record["confirmed_until"])
                 if key not in known)
        listed += [zombie for zombie in found if zombie]
    return record if listed == (record.get("zombies") or []) else dict(record, zombies=listed)


def _zombie_now(proc_root, key):
    """{pid, ppid, name, start_time} of the zombie a state key ("pid:start") names, if it is still that zombie."""
    pid, start_time = (int(part) for part in key.split(":"))
    stat = procfs.read_stat(proc_root, pid)
    if not procfs.is_zombie(stat) or stat.start_time != start_time:
        return None
    return {"pid": pid, "ppid": stat.ppid, "name": stat.name, "start_time": start_time}


def _guard(options, now, current):
    """This run's guardrails: the pause file, and the cure history read from the state under the lock."""
    return guardrails.RunGuard(options.guardrails, current.get("cure_history"), now,
                               guardrails.pause_reason(options.guardrails.pause_file))


def _act(options, containers, host_groups, check_mode, guard=None):
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
        elif guard is not None and guard.apply(outcome, record):        # paused, window, alert, budget, recurring
            outcomes.append(outcome)
        elif len(eligible) >= options.max_per_run:
            outcome.update(result=DEFERRED, reason="max_remediations_per_run=%d reached" % options.max_per_run)
            outcomes.append(outcome)
        else:
            eligible.append(record)
    # The workers inherit the main thread's mask: no SIGTERM lands while a parent holds injected registers.
    with reaper.termination_signals_blocked(), ThreadPoolExecutor(max_workers=options.max_concurrent) as pool:
        outcomes.extend(pool.map(lambda record: remediator.remediate(record, check_mode), eligible))
    for group in host_groups:
        if not options.reap_host_zombies:
            break
        held = host_outcome(group)
        if guard is not None and guard.apply(held, group):
            outcome = held
        elif len(eligible) >= options.max_per_run:
            outcome = host_outcome(group)
            outcome.update(result=DEFERRED, reason="max_remediations_per_run=%d reached" % options.max_per_run)
        else:
            eligible.append(group)
            outcome = remediator.reap_host(group, check_mode)
        outcomes.append(outcome)
    return outcomes


def host_outcome(group):
    return Outcome.of_host_group(group)


_report_line = report_line
_remembered = remembered


def tally(outcomes):
    """Counts per result, and what each persisted counter grows by (no files: a pure function)."""
    counts = {name: sum(1 for item in outcomes if item["result"] == name) for name in RESULTS}
    reaped_zombies = sum(item["zombies_before"] - (item.get("zombies_after") or 0) for item in outcomes
                         if item["result"] == REAPED)
    timeouts = sum(item["timeouts"] for item in outcomes)
    increments = {"containers_cleaned_total": counts[CURED] + counts[REAPED],
                  "containers_reaped_in_place_total": counts[REAPED],
                  "zombies_reaped_in_place_total": reaped_zombies,
                  "cleanup_failures_total": counts[FAILED],
                  "reap_left_attached_total": sum(1 for item in outcomes if item.get("left_attached")),
                  "container_operation_timeouts_total": timeouts}
    return dict(counts, timeouts=timeouts), increments


def _pending_path(options):
    # Outcomes of a run whose state could not be written after it acted: merged by the next run.
    return options.state_path + ".pending"


def _apply(current, increments, remembered_items, done_keys):
    counters = current.setdefault("counters", {})
    for name, value in increments.items():
        counters[name] = counters.get(name, 0) + value
    remembered = current.get("remediations") or []
    for item in remembered_items:
        remembered = state.keep_recent(remembered, item, state.REMEDIATIONS_KEPT)
    current["remediations"] = remembered
    for key in done_keys:                          # success resets the count
        current["containers"].pop(key, None)
        current["host_groups"].pop(key, None)


def _load_pending(options, warnings):
    try:
        fd = atomicfile.open_nofollow(_pending_path(options), os.O_RDONLY)
        with os.fdopen(fd, "r") as handle:
            pending = json.load(handle)
        return [item for item in pending if isinstance(item, dict) and isinstance(item.get("increments"), dict)]
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as error:
        warnings.append("pending outcomes %s unreadable, ignored: %s" % (_pending_path(options), error))
        return []


def _persist(options, increments, remembered_items, done_keys, now, guard=None, outcomes=()):
    """Counters, remembered outcomes and reset sightings into the state (the caller holds the lock).

    If the state cannot be written after acting, what was done goes to a side file that the next run
    merges, so no action is ever lost from the counters and the report."""
    current, warnings = state.load(options.state_path, procfs.read_boot_id(options.proc_root), now=now)
    pending = _load_pending(options, warnings)
    for item in pending:
        _apply(current, item["increments"], item.get("remembered") or [], item.get("done") or [])
    _apply(current, increments, remembered_items, done_keys)
    if guard is not None:
        guard.after(current, outcomes, now, (CURED, REAPED))     # the cure history and the run's holds
    try:
        state.save(options.state_path, current)
    except (OSError, state.StateError) as error:
        entry = {"time": now, "increments": increments, "remembered": remembered_items, "done": done_keys}
        try:
            atomicfile.write(_pending_path(options), json.dumps(pending + [entry]))
            warnings.append("state %s not written (%s): outcomes kept in %s for the next run"
                            % (options.state_path, error, _pending_path(options)))
        except OSError as side_error:
            warnings.append("state %s not written (%s), nor %s (%s): the outcomes are only in this result"
                            % (options.state_path, error, _pending_path(options), side_error))
        return warnings
    if pending:
        os.unlink(_pending_path(options))
    _, problem = metrics.publish(options.metrics_textfile_dir, current)
    if problem:
        warnings.append(problem)
    return warnings


def _record(options, outcomes, check_mode, now, guard=None):
    summary, increments = tally(outcomes)
    changed = summary[CURED] + summary[REAPED] + summary[FAILED] > 0
    warnings = []
    if not check_mode:
        kept = [remembered(item, now) for item in outcomes if item["result"] in (CURED, REAPED, FAILED)]
        done = [item["container_id"] for item in outcomes if item["result"] in (CURED, REAPED)]
        warnings = _persist(options, increments, kept, done, now, guard, outcomes)
        warnings += [item["warning"] for item in outcomes if item.get("warning")]
        try:
            options.audit_log.write(audit.outcome_records(outcomes, now))
        except OSError as error:
            warnings.append("audit log %s not written: %s" % (options.audit_log.path, error))
    return {
        "changed": changed or (check_mode and summary[WOULD] > 0),
        "report": [report_line(item) for item in outcomes],
        "outcomes": [item.to_result() for item in outcomes],
        "summary": summary,
        "dry_run": options.dry_run,
        "node_warnings": warnings,
    }
