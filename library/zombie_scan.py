#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: zombie-cleaner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: zombie_scan
short_description: Find zombie processes on a node, attribute them to containers and pods, count sightings
description:
  - Reads every C(/proc/PID/stat) once, finds zombies (state C(Z)) and walks each zombie's parent chain up to
    a container shim (C(containerd-shim-runc-v2), the old C(docker-containerd-shim), C(conmon)).
  - The process just below the shim is the container's init; the container ID comes from the runtime's bundle
    (C(init.pid)), C(conmon) arguments or the init's cgroup, and the pod, namespace and container name from
    node-local runtime files. No Kubernetes API and no cluster credentials are used.
  - Each container's non-reaping parents are classified as C(application) (the container's own process),
    C(runtime) (shim, runc, crun, conmon) or C(host).
  - Sightings are kept in a local state file. A container is confirmed after O(confirm_count) consecutive runs
    that still see the same zombies (same pid and start time); a run without them resets it.
  - Reads each container's pids cgroup (C(pids.current), C(pids.max), and its ancestors' limits) and ranks the
    containers by pids pressure, so those about to fail forks come first.
  - Changes nothing on the node's workloads. It writes the state file, the audit log and the metrics textfile.
version_added: "0.1.0"
author: zombie-cleaner contributors
options:
  proc_root:
    description: Root of the process filesystem to scan. Set it to a fixture tree in tests.
    type: path
    default: /proc
  state_path:
    description: Sighting state file. Its directory is created with mode 0700; the file is written with mode 0600.
    type: path
    default: /var/lib/zombie-cleaner/state.json
  confirm_count:
    description: Consecutive runs that must see the same zombies before a container is confirmed.
    type: int
    default: 3
  whitelist_patterns:
    description:
      - Regular expressions. A container is protected when one matches C(<namespace>-<pod>),
        C(<namespace>/<pod>/<container>), or the plain Docker, podman or containerd container name.
    type: list
    elements: str
    default: ['^kube-system-.*', '^monitoring-.*', '^logging-.*']
  process_timeout:
    description: Limit for the /proc scan and for waiting on the state lock. Durations like C(10s), C(1m).
    type: str
    default: 10s
  check_interval:
    description:
      - How often the schedule runs (C(5m)). Used to warn when the gap since this node's previous run is more than
        three times longer.
    type: str
    default: 5m
  dry_run:
    description:
      - Accepted for symmetry with the rest of the job. A scan never changes workloads; in dry run it still counts
        sightings so that a later real run knows what was confirmed.
    type: bool
    default: false
  cgroup_root:
    description: Where the cgroup hierarchies are mounted; the pids controller is read under it (v1 and v2).
    type: path
    default: /sys/fs/cgroup
  reap_host_zombies:
    description:
      - Whether confirmed host zombie groups count as work to cure in RV(to_cure), as with
        M(zombie_remediate)'s option of the same name. The scan itself never touches a process.
    type: bool
    default: false
  results_dir:
    description:
      - A directory on the controller to keep this node's result in, as C(<inventory_hostname>.scan.json)
        (mode 0600, directory 0700). Written in check mode too, as a record, not a change on the node.
      - Handled on the controller by the action plugin of the same name; empty keeps nothing.
    type: str
    default: ""
  quiet_group:
    description:
      - An inventory group the node is added to when RV(to_cure) is empty, so that a later play can leave
        the quiet nodes out (C(site.yml) remediates C(all:!zombie_cleaner_quiet)).
      - Handled on the controller by the action plugin; empty adds no group.
    type: str
    default: ""
  settings_check:
    description:
      - The run's settings to check before anything runs on the node, with the same parsers the modules
        use. C(cleaner) is the original design's YAML mapping as given (unknown keys are refused).
        C(effective) holds the settings after the precedence (environment, then C(cleaner), then role
        variables), keyed as in the original design (C(confirm_count), C(check_interval), ...).
      - When any is wrong the node fails with every problem in one message, joined by C(; ), and nothing
        runs on it.
      - Handled on the controller by the action plugin.
    type: dict
    default: {}
  role_variables:
    description:
      - Take every option not given in the task from the zombie_cleaner role's variables
        (C(zombie_cleaner_<option>)), with the role's precedence for the original design's settings
        (environment, then C(cleaner), then role variables), and the settings check and quiet group the role
        uses. The role's scan task sets only this.
      - Handled on the controller by the action plugin; fails when the role's variables are not defined.
    type: bool
    default: false
extends_documentation_fragment:
  - zombie_cleaner.runtime_files
  - zombie_cleaner.outputs
attributes:
  check_mode:
    support: full
    details: Everything is computed and returned; the state file is not written, not even moved aside if corrupt.
  diff_mode:
    support: full
    details: Shows the sighting counts and zombies per container before and after.
notes:
  - Needs root on the node to read other users' C(/proc/PID/cmdline) and runtime files.
  - Needs the host PID namespace; inside a container only that container's processes are visible.
"""

EXAMPLES = r"""
- name: Scan this node with the original design's defaults
  zombie_scan:

- name: Scan with a faster confirmation and an extra protected namespace
  zombie_scan:
    confirm_count: 2
    whitelist_patterns:
      - '^kube-system-.*'
      - '^payments-.*'
  register: scan

- name: Show what is confirmed and would be remediated
  ansible.builtin.debug:
    msg: "{{ scan.to_cure.containers | map(attribute='container_id') }}"

- name: Scan, keep the result on the controller, and group the nodes with nothing to cure
  zombie_scan:
    results_dir: /var/tmp/zombie-cleaner-results
    quiet_group: zombie_cleaner_quiet
"""

RETURN = r"""
zombie_count:
  description: Zombies found by this scan (host and containers).
  returned: always
  type: int
  sample: 4
container_zombie_count:
  description: Zombies attributed to a container.
  returned: always
  type: int
  sample: 3
host_zombie_count:
  description: Zombies outside any container (never remediated by a restart).
  returned: always
  type: int
  sample: 1
scanned_processes:
  description: Processes read in the /proc pass.
  returned: always
  type: int
  sample: 412
scan_seconds:
  description: Duration of the /proc pass and attribution.
  returned: always
  type: float
  sample: 0.0123
check_seconds:
  description: Duration of the whole check (scan plus state update); observed in the duration histogram.
  returned: always
  type: float
  sample: 0.0151
metrics_path:
  description: The textfile written for node_exporter, or null (check mode, metrics off, directory missing).
  returned: always
  type: str
  sample: /var/lib/prometheus/node-exporter/zombie_cleaner.prom
containers:
  description:
    - Containers holding zombies, highest pids pressure first, then most zombies (records.ContainerRecord.to_result).
    - Only containers whose id the runtime's own root-owned state ties to a shim that runs as root of the host from a
      root-owned binary, and to the init below it (C(id_source) C(bundle) for containerd and Docker, C(conmon) for
      CRI-O and podman). Anything less is reported under C(host_groups) with C(unverified_identity).
    - C(identity_unknown) says why a Kubernetes container (containerd's C(k8s.io) namespace, CRI-O) whose pod cannot be
      named is protected. C(sandbox_members) lists the other containers of a shared pod shim, C(protected_members)
      those of them that are protected (the shim is never killed while there are any).
    - A record grows with its parents, never with its zombies. C(zombie_count) counts them all, C(confirmed_zombies)
      the confirmed ones, C(oldest_seen) and C(newest_seen) are the first-seen times (Unix seconds) of the oldest and
      the newest; C(zombies) lists at most 10, the oldest first, each with C(confirmed) and C(first_seen), and
      C(zombies_omitted) says how many it leaves out. Every zombie stays on the node, in the state file (with its
      first-seen time and run count) and the audit log (its sighting).
  returned: always
  type: list
  elements: dict
  sample:
    - container_id: 3f4e...c2
      id_source: bundle
      runtime: containerd
      containerd_namespace: k8s.io
      namespace: default
      pod: web-7d9f
      container_name: app
      pod_uid: 0b1c...
      cgroup_pod_uid: 0b1c...
      name: null
      container_type: container
      sandbox_id: 9a...
      workload: default/web/app
      workload_kind: deployment
      pid_namespace: container
      shim: {pid: 812, name: containerd-shim, start_time: 5512, kind: containerd, binary: containerd-shim-runc-v2, id: 9a...}
      shim_shared: true
      sandbox_members: [{container_id: 9a..., namespace: default, pod: web-7d9f, container_name: null}]
      protected_members: []
      identity_unknown: null
      init: {pid: 845, name: sleep, start_time: 5530}
      init_is_zombie: false
      zombie_count: 3
      confirmed_zombies: 3
      oldest_seen: 1764129600.0
      newest_seen: 1764129900.0
      zombies: [{pid: 901, ppid: 845, name: sh, start_time: 6011, parent_class: application, confirmed: true,
                 first_seen: 1764129600.0}]
      zombies_omitted: 2
      pids_current: 61
      pids_max: 64
      pids_pressure: 0.9531
      pids_limit_cgroup: /kubepods/besteffort/pod0b1c.../3f4e...c2
      parents: [{pid: 845, name: sleep, start_time: 5530, parent_class: application, zombie_count: 3}]
      parent_classes: [application]
      sightings: 3
      confirm_count: 3
      confirmed: true
      since: 1764129600.0
      protected: false
      protected_by: null
      runtime_fault: false
      candidate: true
      decision: confirmed
host_groups:
  description:
    - Host zombies grouped by their parent, with sighting counts. Never candidates for a restart or a signal.
    - C(unverified_identity) is the container an unbelieved shim's argv or the zombie's own cgroup claims, with the
      source and why it is not believed (an impostor, a rootless runtime, a wrong O(containerd_state_dir)), or null.
    - Its zombies as in RV(containers) - C(zombie_count), C(confirmed_zombies), C(oldest_seen), C(newest_seen), at
      most 10 in C(zombies) (the oldest first), C(zombies_omitted).
  returned: always
  type: list
  elements: dict
  sample:
    - key: "host:1:0"
      parent: {pid: 1, name: init, start_time: 0}
      parent_class: host
      parent_is_host_init: true
      unverified_identity: null
      zombie_count: 1
      confirmed_zombies: 0
      oldest_seen: 1764129900.0
      newest_seen: 1764129900.0
      zombies: [{pid: 7001, ppid: 1, name: mail, start_time: 88012, parent_class: host, confirmed: false,
                 first_seen: 1764129900.0}]
      zombies_omitted: 0
      sightings: 1
      confirmed: false
      since: 1764129900.0
      candidate: false
vm_sandboxes:
  description: VM-isolated shims (kata) met on the walk; their workloads are not visible in the host's /proc.
  returned: always
  type: list
  elements: dict
  sample: []
state_changed:
  description:
    - Whether this run changed the node's sighting state, as C(changed) does unless the node joined
      O(quiet_group), which Ansible always reports as a change.
  returned: success
  type: bool
  sample: false
results_path:
  description: Where the result was kept on the controller, when O(results_dir) is set.
  returned: when O(results_dir) is set
  type: str
  sample: /var/tmp/zombie-cleaner-results/node1.scan.json
to_cure:
  description:
    - What a remediation acts on, the input of M(zombie_remediate) (C(containers), C(host_groups)).
    - Confirmed, unprotected containers; and confirmed host groups whose parent is not the host's PID 1,
      only when O(reap_host_zombies) is on. Each record is as in RV(containers) or RV(host_groups), with only the
      confirmed zombies - the others may be about to be reaped by their parent, which then learns their exit status.
    - C(zombies) lists at most 10 of them (the oldest first), C(confirmed_zombies) counts them all,
      C(unconfirmed_zombies) the ones left out, and C(confirmed_until) names the rest - every zombie of the group
      that the node's state saw first no later than that time is a confirmed one. M(zombie_remediate) re-reads them
      from the node's state, so the record stays small however many zombies there are.
  returned: always
  type: dict
  sample: {containers: [{container_id: 3f4e...c2, zombie_count: 3, confirmed_zombies: 3, unconfirmed_zombies: 0,
                         confirmed_until: 1764129600.0, zombies: [{pid: 901, ppid: 845, name: sh, start_time: 6011,
                                                                   confirmed: true, first_seen: 1764129600.0}]}],
           host_groups: []}
candidates:
  description: IDs of confirmed, unprotected containers whose zombies an application parent holds.
  returned: always
  type: list
  elements: str
  sample: ["3f4e...c2"]
summary:
  description: Counts for a one-line report.
  returned: always
  type: dict
  sample: {zombies: 4, host_zombies: 1, containers_with_zombies: 1, tracked_containers: 1, confirmed: 1,
           protected: 0, candidates: 1, runtime_faults: 0, max_pids_pressure: 0.9531}
previous_run_age_seconds:
  description:
    - Seconds since this node's previous run, or null on the first.
    - When it is more than 3 times I(check_interval), or less than a third of it, a warning says how far
      confirmation then drifts from O(confirm_count) x O(check_interval).
  returned: always
  type: float
  sample: 300.2
node_warnings:
  description: Things the operator should know (corrupt state kept aside, reboot, late schedule).
  returned: always
  type: list
  elements: str
  sample: []
state_path:
  description: The state file used.
  returned: always
  type: str
  sample: /var/lib/zombie-cleaner/state.json
node:
  description: The node's own host name (the inventory name may differ).
  returned: always
  type: str
  sample: worker-07
boot_id:
  description: The node's boot id the sightings are tied to.
  returned: always
  type: str
  sample: 2b0c0a1e-7f0e-4d5b-9a59-0c1c6f0f3f10
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.zombie_cleaner.module_args import SCAN_ARGUMENT_SPEC
from ansible.module_utils.zombie_cleaner.runner_scan import run_scan_module


def main():
    module = AnsibleModule(argument_spec=SCAN_ARGUMENT_SPEC, supports_check_mode=True)
    module.exit_json(**run_scan_module(module))


if __name__ == "__main__":
    main()
