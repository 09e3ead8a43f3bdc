#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: zombie-cleaner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: zombie_remediate
short_description: Cure confirmed zombie-holding containers on a node, least disruptive rung first
description:
  - Takes the container records of a M(zombie_scan) result and acts only on those that are confirmed, not protected,
    and whose zombies an application parent holds (or, with O(allow_shim_kill_for_runtime_faults), the runtime).
  - Acts only on an identity the runtime's own root-owned state confirms (C(id_source) C(bundle) or C(conmon)). A
    record whose container id came from a shim's argv or a cgroup name is refused as C(identity unverified), and a
    Kubernetes container whose pod cannot be named as C(identity unknown).
  - Re-verifies each container right before acting, and again before every rung; once its zombies are gone the
    ladder stops (a rung that did the job but complained is a cure, its complaint reported). If its init or shim is
    no longer the exact process seen (pid and start time), or the runtime's state no longer ties them, it is stale.
  - Takes the node's state lock before acting (a run that cannot have it acts on nothing), writes an audit line
    before and after every rung, and never escalates to the shim when the init stays in uninterruptible sleep
    after SIGKILL.
  - "The ladder, each rung bounded by O(container_timeout): C(restart) through the runtime (C(docker restart -t),
    C(podman restart -t), C(crictl stop --timeout) for kubelet-managed containerd and CRI-O containers, else
    C(ctr task kill) then a restart of the task); C(kill_init), SIGKILL of the container's init; C(kill_shim),
    SIGKILL of the shim (a containerd CRI shim may serve the whole pod sandbox: the outcome says so)."
  - Signals go only to the exact process seen (pidfd where the kernel has it), never to pid 1.
  - Success resets the container's sighting count in the state file; outcomes are appended to the audit log.
version_added: "0.1.0"
author: zombie-cleaner contributors
options:
  containers:
    description:
      - Container records from a M(zombie_scan) result (its RV(zombie_scan#module:to_cure.containers)).
      - A record lists at most a sample of its confirmed zombies. When C(confirmed_zombies) counts more, the rest are
        read from the node's state file under its lock - every zombie of the container first seen no later than
        C(confirmed_until), exactly the scan's confirmed ones - and checked against C(/proc) before anything is done.
        Zombies marked C(confirmed) false are never acted on.
    type: list
    elements: dict
    required: true
  host_groups:
    description:
      - Host zombie groups from M(zombie_scan) (C(host_groups) with C(confirmed) true). Only used with
        O(reap_host_zombies); they are never cured by restarting anything.
    type: list
    elements: dict
    default: []
  reap_in_place:
    description:
      - First rung for containers whose zombies an application process holds. The parent is stopped (about 0.5 ms
        for a few zombies) with C(PTRACE_SEIZE)/C(PTRACE_INTERRUPT), made to call C(wait4) for exactly the zombies
        seen, its registers restored and detached. No restart, no downtime.
      - Skipped (the ladder goes on) unless provably safe - the exact process seen, not traced, not stopped, not a
        kernel thread, not the host's PID 1, x86_64, and every seccomp filter of the parent evaluates to ALLOW for
        that exact C(wait4) call.
    type: bool
    default: true
  reap_host_zombies:
    description: Also reap in place the confirmed zombies of ordinary host processes (never the host's init).
    type: bool
    default: false
  proc_root:
    description: Root of the process filesystem.
    type: path
    default: /proc
  state_path:
    description: The sighting state file shared with M(zombie_scan).
    type: path
    default: /var/lib/zombie-cleaner/state.json
  container_timeout:
    description: Limit for one rung on one container (C(30s)); past it, escalate to the next rung.
    type: str
    default: 30s
  process_timeout:
    description: Limit for waiting on the state lock.
    type: str
    default: 10s
  replacement_wait:
    description: How long to look for the kubelet's new container of the same pod and name after a stop.
    type: str
    default: 30s
  max_concurrent_containers:
    description: Containers worked on at once on this node.
    type: int
    default: 10
  max_remediations_per_run:
    description: At most this many containers are remediated on this node per run; the rest are C(deferred).
    type: int
    default: 5
  allow_shim_kill_for_runtime_faults:
    description: Allow the shim rung for containers whose zombies the runtime itself (shim, runc, conmon) holds.
    type: bool
    default: false
  allow_pod_shim_kill:
    description:
      - Allow the shim rung when the shim serves a whole pod sandbox (containerd's CRI shim). Killing it stops every
        container of the pod. Even then it is never planned while another container of that pod is protected by
        the whitelist or cannot be named.
    type: bool
    default: false
  dry_run:
    description: Re-verify and report the rungs that would run; change nothing on workloads.
    type: bool
    default: false
  docker_bin:
    description: Docker CLI.
    type: str
    default: docker
  podman_bin:
    description: podman CLI.
    type: str
    default: podman
  ctr_bin:
    description: containerd's ctr CLI.
    type: str
    default: ctr
  crictl_bin:
    description: crictl CLI (used for kubelet-managed containers when installed).
    type: str
    default: crictl
  guardrails:
    description:
      - What holds confirmed work back on this node, checked right before acting. A held-back container is
        C(deferred) (or C(recurring)) with C(blocked_reason) and a reason that says why; nothing is done to it.
    type: dict
    suboptions:
      pause_file:
        description:
          - While this path exists (a file, a link or a directory), the node remediates nothing (C(paused)). Its
            first line, if any, is shown as the reason. Empty turns the check off.
        type: str
        default: /etc/zombie-cleaner/pause
      max_cures_per_workload:
        description:
          - The cure-loop brake. A workload (C(workload) of the record, the parent's name for host zombies) cured this
            many times within O(guardrails.cure_window) is C(recurring), no longer cured automatically. A reap in
            place counts as a cure. C(0) turns the brake off.
        type: int
        default: 3
      cure_window:
        description: How far back the brake counts cures (C(24h)).
        type: str
        default: 24h
      cure_history_reset:
        description: Workloads whose cure history is forgotten before this run (the brake released by hand).
        type: list
        elements: str
        default: []
      held_back:
        description:
          - What the controller held back for the fleet (the M(zombie_guardrails) decision for this node) - C(node)
            for every item, C(items) per container id or host group key, each C({reason, detail}) with a reason of
            C(window), C(alert), C(prometheus_unreachable) or C(budget).
        type: dict
        default: {}
extends_documentation_fragment:
  - zombie_cleaner.runtime_files
  - zombie_cleaner.outputs
attributes:
  check_mode:
    support: full
    details: Re-verifies and lists the rungs that would run; nothing is signalled, restarted or written.
  diff_mode:
    support: none
notes:
  - Needs root and the host PID namespace on the node.
"""

EXAMPLES = r"""
- name: Scan
  zombie_scan:
  register: scan

- name: Cure what is confirmed, one container at a time
  zombie_remediate:
    containers: "{{ scan.to_cure.containers }}"
    max_concurrent_containers: 1
    container_timeout: 20s
  when: scan.candidates | length > 0
"""

RETURN = r"""
node_warnings:
  description: Problems that did not fail the run (metrics directory missing, audit log not writable).
  returned: always
  type: list
  elements: str
  sample: []
outcomes:
  description:
    - One per container (and host group) passed in. C(result) is C(reaped_in_place) (cured without a restart; with
      C(stop_seconds), how long the parent was stopped), C(cured), C(failed), C(stale), C(skipped), C(deferred) or
      C(would_remediate) (dry run and check mode, with C(plan) naming each rung and the reap verdict), or
      C(recurring) (held back by the cure-loop brake, with C(recurring) - its cure count and until when).
    - A held-back item (C(deferred) by a guardrail, or C(recurring)) has C(blocked_reason) - C(window), C(alert),
      C(prometheus_unreachable), C(budget), C(recurring) or C(paused).
    - Every key is always there (null when it does not apply; cure/outcomes.Outcome). An outcome grows with the
      rungs tried, never with the zombies - C(zombies_before) and C(zombies_after) count them, C(zombie_pids) lists
      at most 10, and of a reap in place each parent's verdict gives C(reaped_count) and at most 10 pids in
      C(reaped).
    - A reap in place's verdict per parent also says how the wait4 calls ran, C(way) (C(loop) - one page of ours
      mapped in the parent for the time of the reap, or C(steps) - single steps) and C(loop_refused) (why not the
      loop); C(page_left), the address of a 4 KiB mapping of ours that could not be unmapped from the parent;
      and C(tracer), the pid of the job's tracer process that stays to restore the registers of a parent it could
      not stop in time, such as one frozen while it ran our code (C(left_attached) is true then).
  returned: always
  type: list
  elements: dict
  sample:
    - container_id: 9b77b780...
      runtime: docker
      namespace: shop
      pod: web-1
      container_name: app
      name: shop-web-1-app
      pod_uid: 0b1c...
      workload: shop/web/app
      workload_kind: statefulset
      pid_namespace: container
      result: cured
      rung: restart
      reason: zombies gone, container running again
      zombies_before: 7
      zombies_after: 0
      zombie: {pid: 901, ppid: 845, name: sh, start_time: 6011}
      zombie_pids: [901, 902, 903, 904, 905, 906, 907]
      parents: [{name: node, pid: 845, parent_class: application, zombie_count: 7, is_init: true}]
      timeouts: 0
      seconds: 2.41
      rungs:
        - {rung: reap_in_place, ok: false, seconds: 0.01, timeouts: 0, stop_seconds: 0.0, reaped: 0, left_attached: false,
           detail: "node[845]: its seccomp filter does not allow wait4: KILL_PROCESS",
           parents: [{parent: {pid: 845, name: node}, ok: false, verdict: skipped, reaped: [], reaped_count: 0}]}
        - {rung: restart, ok: true, seconds: 2.4, timeouts: 0, restarted: true, detail: "docker restart -t ok in 2.4s"}
      plan: null
      stop_seconds: null
      complaint: null
      shim_note: null
      runtime_fault: null
      runtime_version: null
      replacement: null
      warning: null
      left_attached: null
      blocked_reason: null
      recurring: null
summary:
  description:
    - Counts by result (reaped_in_place, cured, failed, stale, skipped, deferred, recurring, would_remediate) and
      timeouts.
  returned: always
  type: dict
  sample: {reaped_in_place: 2, cured: 1, failed: 0, stale: 0, skipped: 1, deferred: 0, recurring: 0, would_remediate: 0,
           timeouts: 0}
dry_run:
  description: Whether this was a dry run.
  returned: always
  type: bool
  sample: false
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.zombie_cleaner.module_args import REMEDIATE_ARGUMENT_SPEC
from ansible.module_utils.zombie_cleaner.runner_remediate import run_remediate_module


def main():
    module = AnsibleModule(argument_spec=REMEDIATE_ARGUMENT_SPEC, supports_check_mode=True)
    module.exit_json(**run_remediate_module(module))


if __name__ == "__main__":
    main()
