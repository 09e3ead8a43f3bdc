# -*- coding: utf-8 -*-
# Copyright: zombie-cleaner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The shape of a remediation's outcome, one per container or host group, and the one place it becomes a record
of zombie_remediate's result (RETURN: outcomes), of a size that grows with the containers, not their zombies.

remembered() and report_line() read an outcome by name, so they serve an Outcome and an outcome read back
from a result alike.
"""

from __future__ import annotations

import dataclasses

from ansible.module_utils.zombie_cleaner.observe import attribution, records

# Outcome results.
CURED = "cured"
REAPED = "reaped_in_place"
FAILED = "failed"
STALE = "stale"
SKIPPED = "skipped"
DEFERRED = "deferred"
WOULD = "would_remediate"

IDENTITY = ("container_id", "runtime", "namespace", "pod", "container_name", "name", "pod_uid", "workload",
            "workload_kind", "pid_namespace")


@dataclasses.dataclass
class Outcome(records.Fields):
    """What happened to one container (or host group), and why."""

    container_id: str = None              # a host group's key (host:<pid>:<start>)
    runtime: str = None
    namespace: str = None
    pod: str = None
    container_name: str = None
    name: str = None
    pod_uid: str = None
    workload: str = None
    workload_kind: str = None
    pid_namespace: str = None
    result: str = None
    reason: str = None
    rung: str = None                      # the rung that cured it
    zombies_before: int = 0
    zombies_after: int = None
    zombie: dict = None                   # the first zombie: the audit log's zombie fields
    zombie_pids: list = dataclasses.field(default_factory=list)    # every zombie acted on (a result lists a sample)
    parents: list = dataclasses.field(default_factory=list)
    rungs: list = dataclasses.field(default_factory=list)          # a step per rung tried: {rung, ok, detail, ...}
    timeouts: int = 0
    seconds: float = None
    plan: list = None                     # check mode and dry run: each rung that would run
    stop_seconds: float = None            # reaped in place: how long the parent was stopped
    complaint: str = None                 # what the rung that cured it said against it
    shim_note: str = None
    runtime_fault: bool = None
    runtime_version: str = None
    replacement: dict = None              # the kubelet's new container
    warning: str = None
    left_attached: bool = None
    blocked_reason: str = None            # held back by a guardrail (cure/guardrails.py)
    recurring: dict = None                # held back by the cure-loop brake

    @classmethod
    def of_record(cls, record):
        zombies = record.get("zombies") or []
        return cls(zombies_before=len(zombies), parents=attribution.parent_summary(record),
                   zombie=zombies[0] if zombies else None, zombie_pids=[item["pid"] for item in zombies],
                   **{key: record.get(key) for key in IDENTITY})

    @classmethod
    def of_host_group(cls, group):
        parent = group["parent"]
        zombies = group.get("zombies") or []
        return cls(container_id=group["key"], name="host %s[%s]" % (parent.get("name"), parent["pid"]),
                   zombies_before=len(zombies), zombie=zombies[0] if zombies else None,
                   zombie_pids=[item["pid"] for item in zombies],
                   parents=[{"name": parent.get("name"), "pid": parent["pid"], "parent_class": attribution.HOST,
                             "is_init": False}])

    def to_result(self):
        """The outcome in zombie_remediate's result: at most records.SAMPLE_SIZE zombie pids, and of the
        zombies a reap took, the count and a sample."""
        result = dataclasses.asdict(self)
        result["zombie_pids"] = self.zombie_pids[:records.SAMPLE_SIZE]
        result["rungs"] = [bounded_step(step) for step in self.rungs]
        if self.plan is not None:
            result["plan"] = [bounded_step(step) for step in self.plan]
        return result


def _bounded_reap(verdict):
    reaped = verdict.get("reaped") or []
    return dict(verdict, reaped=reaped[:records.SAMPLE_SIZE], reaped_count=len(reaped))


def bounded_step(step):
    """A rung's step (or planned step) with the reaper's verdicts per parent bounded."""
    step = dict(step)
    for key in ("parents", "verdicts"):
        if step.get(key):
            step[key] = [_bounded_reap(verdict) for verdict in step[key]]
    return step


def report_line(outcome):
    """The outcome in the play's report: one line."""
    # Host groups have no runtime; their key (host:<pid>:<start>) says what they are.
    where = ("%s %s" % (outcome["runtime"], outcome["container_id"][:12]) if outcome.get("runtime")
             else outcome["container_id"])
    text = "%s (%s): %s" % (attribution.label(outcome), where, outcome["result"])
    if outcome.get("rung"):
        text += " by %s" % outcome["rung"]
    if outcome.get("plan"):
        text += ": would " + " -> ".join(step["action"] for step in outcome["plan"])
    if outcome.get("reason"):
        text += " (%s)" % outcome["reason"]
    return text


def remembered(outcome, now):
    """What the fleet report needs of an outcome, kept in the state."""
    return {"time": now, "container_id": outcome["container_id"], "label": attribution.label(outcome),
            "workload": outcome.get("workload"), "pid_namespace": outcome.get("pid_namespace"),
            "runtime": outcome.get("runtime"), "result": outcome["result"], "rung": outcome.get("rung"),
            "reason": outcome.get("reason"), "zombies_before": outcome["zombies_before"],
            "stop_seconds": outcome.get("stop_seconds"),
            "parents": outcome.get("parents") or []}
