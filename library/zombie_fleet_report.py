#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: zombie-cleaner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: zombie_fleet_report
short_description: Render the fleet's zombie-cleaner state as a Markdown summary and a self-contained HTML page
description:
  - Takes every node's state file (as read by M(ansible.builtin.slurp)) and writes C(report.md) and C(report.html)
    into O(output_dir) on the host it runs on (the controller, with C(delegate_to=localhost)).
  - The report shows zombies per node over the recent runs (an inline SVG chart), the containers closest to failing
    forks by pids pressure, confirmed, protected and remediated counts, nodes that were unreachable or have no state,
    and for each repeat-offender workload the parent that does not reap with the prevention to apply.
  - The HTML page has no external assets (inline CSS and SVG) so it can be mailed or kept as a CI artifact.
version_added: "0.2.0"
author: zombie-cleaner contributors
options:
  nodes:
    description:
      - Inventory hostname to the M(ansible.builtin.slurp) result of its state file, or null when the host never
        ran that task. Unreachable and failed results are shown as such.
    type: dict
    required: true
  output_dir:
    description: Directory the two files are written to (created if missing).
    type: path
    required: true
  title:
    description: Title of both documents.
    type: str
    default: zombie-cleaner fleet report
  repeat_threshold:
    description: A workload remediated (or confirmed again after a cure) this many times is a repeat offender.
    type: int
    default: 2
attributes:
  check_mode:
    support: full
    details: The report is built and returned; no file is written.
  diff_mode:
    support: none
notes:
  - Reads nothing on the nodes itself; C(playbooks/report.yml) gathers the state files first.
"""

EXAMPLES = r"""
- name: Render the report from the state files gathered by slurp
  zombie_fleet_report:
    nodes: "{{ dict(ansible_play_hosts_all | zip(ansible_play_hosts_all | map('extract', hostvars)
               | map(attribute='node_state', default=None))) }}"
    output_dir: reports/
  delegate_to: localhost
  run_once: true
"""

RETURN = r"""
markdown_path:
  description: The Markdown summary written (null in check mode).
  returned: always
  type: str
  sample: reports/report.md
html_path:
  description: The HTML page written (null in check mode).
  returned: always
  type: str
  sample: reports/report.html
totals:
  description: Fleet totals.
  returned: always
  type: dict
  sample: {nodes: 3, reachable: 2, unreachable: 1, without_state: 0, zombies: 9, host_zombies: 1, containers: 2,
           confirmed: 1, protected: 0, remediated: 4, failures: 0, timeouts: 0}
problems:
  description: Nodes without a usable state, and why.
  returned: always
  type: list
  elements: dict
  sample: [{host: node3, problem: "unreachable - ssh connect to host 10.0.0.3 port 22, No route to host",
            unreachable: true}]
worst_containers:
  description: Containers with zombies across the fleet, highest pids pressure first.
  returned: always
  type: list
  elements: dict
  sample: [{host: node1, label: shop/web-1/app, runtime: containerd, zombies: 3, pids_current: 61, pids_max: 64,
            pids_pressure: 0.9531}]
repeat_offenders:
  description: Workloads cured more than once, the parents that do not reap, and the prevention to apply.
  returned: always
  type: list
  elements: dict
  sample: [{workload: shop/web-1/app, remediations: 3, hosts: [node1], parents: [sleep],
            advice: ["PID 1 of the container (`sleep`) does not reap orphans. Set shareProcessNamespace ..."]}]
report:
  description: The headline in one line.
  returned: always
  type: list
  elements: str
  sample: ["3 nodes (2 reachable, 1 unreachable), 9 zombies (1 on hosts), 2 containers with zombies, ..."]
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.zombie_cleaner.module_args import REPORT_ARGUMENT_SPEC
from ansible.module_utils.zombie_cleaner.runner_report import run_report_module


def main():
    module = AnsibleModule(argument_spec=REPORT_ARGUMENT_SPEC, supports_check_mode=True)
    module.exit_json(**run_report_module(module))


if __name__ == "__main__":
    main()
