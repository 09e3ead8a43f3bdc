# -*- coding: utf-8 -*-
# Copyright: zombie-cleaner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The rungs of the remediation ladder, least disruptive first, one object each (as runtime_cli.RUNTIMES is
for the runtimes): whether a container's ladder has it, what check mode says it would do, what it does,
what stops the ladder before it, and how the cure it made is judged.

remediate.Remediator climbs them: it re-checks the zombies before each rung, writes the audit line before and
after it, and keeps every rung within container_timeout and the run's deadline.
"""

from __future__ import annotations

import signal
import time

from ansible.module_utils.zombie_cleaner.cure import outcomes, procsignal, reaper
from ansible.module_utils.zombie_cleaner.observe import attribution, procfs

REAP = "reap_in_place"
RESTART = "restart"
KILL_INIT = "kill_init"
KILL_SHIM = "kill_shim"


class Rung:
    name = None
    text = None
    starts_again = False        # cured by it, the container is started again (by the runtime, or the kubelet)

    def offered(self, record, options):
        """Whether the ladder of a container whose application does not reap has this rung."""
        return True

    def refusal(self, previous):
        """Why the ladder must not climb to this rung after the previous step, or None."""
        return None

    def target(self, record, runtime):
        return ""

    def describe(self, remediator, record, runtime, zombies):
        """What check mode and dry run say this rung would do."""
        return {"rung": self.name, "action": "%s%s" % (self.text, self.target(record, runtime))}

    def act(self, remediator, record, runtime, zombies, deadline):
        """Do it: the step's fields besides rung and seconds (ok, detail, timeouts, and the rung's own)."""
        raise NotImplementedError

    def step(self, remediator, record, runtime, zombies, deadline):
        started = time.monotonic()
        step = {"rung": self.name, "ok": False, "timeouts": 0, "detail": ""}
        step.update(self.act(remediator, record, runtime, zombies, deadline))
        step["seconds"] = round(time.monotonic() - started, 3)
        return step

    def cured(self, remediator, record, runtime, outcome, step, deadline):
        """The zombies are gone after this rung: is the workload running again?"""
        remediator.verify_workload(record, runtime, outcome, deadline, self.starts_again)


class ReapInPlace(Rung):
    name = REAP
    text = "make the non-reaping parent call wait4 in place (ptrace)"

    def offered(self, record, options):
        return options.reap_in_place

    @staticmethod
    def reap(options, record, zombies, dry_run):
        """reaper.reap for every application parent of these zombies: [result per parent]."""
        parents = {parent["pid"]: parent for parent in record.get("parents") or []
                   if parent.get("parent_class") in attribution.CURABLE}
        by_parent = {}
        for zombie in zombies:
            if zombie["ppid"] in parents:
                by_parent.setdefault(zombie["ppid"], []).append(zombie)
        return [reaper.reap(options.proc_root, parents[pid], group, options.process_timeout, dry_run)
                for pid, group in sorted(by_parent.items())]

    def describe(self, remediator, record, runtime, zombies):
        results = self.reap(remediator.options, record, zombies, dry_run=True)
        verdicts = ["%s[%s]: %s%s" % (item["parent"].get("name"), item["parent"]["pid"], item["reason"],
                                      "; seccomp %s" % "/".join(item["seccomp"]) if item["seccomp"] else "")
                    for item in results]
        safe = bool(results) and all(item["ok"] for item in results)
        return {"rung": self.name, "action": "%s%s (%s)" % (self.text, "" if safe else ": not safe, skipped",
                                                            "; ".join(verdicts) or "no application parent"),
                "safe": safe, "verdicts": results}

    def act(self, remediator, record, runtime, zombies, deadline):
        results = self.reap(remediator.options, record, zombies, dry_run=False)
        step = {"parents": results, "ok": bool(results) and all(item["ok"] for item in results),
                "stop_seconds": max([item["stop_seconds"] or 0.0 for item in results] or [0.0]),
                "reaped": sum(len(item["reaped"]) for item in results),
                # A tracer that could not let go: an alert, and nothing more is done to this container this run.
                "left_attached": any(item.get("left_attached") for item in results),
                "detail": "; ".join("%s[%s]: %s" % (item["parent"].get("name"), item["parent"]["pid"], item["reason"])
                                    for item in results) or "no application parent"}
        if step["ok"] and record.get("init") and not procsignal.is_same_process(
                remediator.options.proc_root, record["init"]["pid"], record["init"]["start_time"]):
            step.update(ok=False, detail=step["detail"] + "; but the container's init changed")
        return step

    def cured(self, remediator, record, runtime, outcome, step, deadline):
        outcome.update(result=outcomes.REAPED, stop_seconds=step.get("stop_seconds"),
                       reason="zombies reaped by their parent in place; the parent was stopped for %.3f ms, "
                              "the container kept running" % ((step.get("stop_seconds") or 0) * 1000))


class Restart(Rung):
    name = RESTART
    text = "graceful restart through the runtime"

    def target(self, record, runtime):
        return " via %s" % (runtime.name if runtime else "no supported runtime CLI")

    def act(self, remediator, record, runtime, zombies, deadline):
        if runtime is None:
            return {"detail": "no runtime adapter for %s" % record.get("runtime")}
        results = runtime.graceful_restart(record, remediator.options.container_timeout, deadline)
        ok = all(item.ok for item in results)
        return {"timeouts": sum(1 for item in results if item.timed_out), "ok": ok, "restarted": ok,
                "detail": "; ".join(item.describe() for item in results)}


class Kill(Rung):
    """SIGKILL to the exact process seen (pidfd where there is one), then a wait for it to go."""

    role = None                 # which process of the record: init or shim
    starts_again = True

    def target(self, record, runtime):
        process = record.get(self.role) or {}
        return " %s[%s]" % (process.get("binary") or process.get("name"), process.get("pid"))

    def act(self, remediator, record, runtime, zombies, deadline):
        target = record.get(self.role)
        if not target:
            return {"detail": "no %s process known" % self.role}
        return kill(remediator.options, target)


class KillInit(Kill):
    name = KILL_INIT
    text = "SIGKILL the container's init"
    role = "init"

    def act(self, remediator, record, runtime, zombies, deadline):
        if record.get("init_is_zombie"):
            return {"detail": "the init is itself a zombie: nothing to kill"}
        return super().act(remediator, record, runtime, zombies, deadline)


class KillShim(Kill):
    name = KILL_SHIM
    text = "SIGKILL the container's shim"
    role = "shim"

    def offered(self, record, options):
        return shim_kill_problem(record, options) is None

    def refusal(self, previous):
        if previous is not None and previous.get("uninterruptible"):
            return ("the container's init is in uninterruptible sleep (D) after SIGKILL: it waits for the kernel "
                    "(storage, a hung mount), which killing the shim cannot change; not escalated")
        return None


def shim_kill_problem(record, options):
    """Why the shim rung is ruled out for this container, or None.

    A CRI shim serves every container of its pod: killing it stops them all, so it needs its own opt-in,
    and never happens while another container of the pod is protected (or its protection is unknown)."""
    if not record.get("shim_shared"):
        return None
    sandbox = record["shim"].get("id")
    if not options.allow_pod_shim_kill:
        return "the shim serves the whole pod sandbox %s: killing it needs allow_pod_shim_kill" % sandbox
    protected = record.get("protected_members")
    if protected is None:
        return "the protection of the other containers of pod sandbox %s is unknown" % sandbox
    if protected:
        return "another container of pod sandbox %s is protected (%s)" % (sandbox, ", ".join(protected))
    return None


def kill(options, target):
    """SIGKILL to target ({pid, start_time, name}) if it is still the process seen: the step's fields."""
    try:
        how = procsignal.send_exact(options.proc_root, target["pid"], target["start_time"], signal.SIGKILL)
    except procsignal.Refused as refused:
        return {"ok": False, "detail": str(refused)}
    except OSError as error:
        return {"ok": False, "detail": "signal failed: %s" % error}
    if procsignal.wait_gone(options.proc_root, target["pid"], target["start_time"], options.container_timeout):
        return {"ok": True, "detail": "SIGKILL sent (%s) to %s[%d]" % (how, target["name"], target["pid"])}
    stat = procfs.read_stat(options.proc_root, target["pid"])
    stuck = stat is not None and stat.state == "D"
    return {"ok": False, "timeouts": 1, "uninterruptible": stuck,
            "detail": "SIGKILL sent (%s) to %s[%d]; still there after %.0fs%s" % (
                how, target["name"], target["pid"], options.container_timeout,
                " in uninterruptible sleep (D)" if stuck else "")}


# The ladder's order: least disruptive first.
LADDER = (ReapInPlace(), Restart(), KillInit(), KillShim())
RUNGS = {rung.name: rung for rung in LADDER}
