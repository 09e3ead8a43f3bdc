#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: zombie-cleaner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: zombie_guardrails
short_description: Decide the fleet-wide holds before a remediation batch (remediation window, Prometheus alerts, budget)
description:
  - Runs on the controller only (its action plugin); nothing is sent to a node. Run it once per batch
    (C(run_once)) between the scans and the remediation, and pass each node's entry of RV(hosts) to
    M(zombie_remediate) as O(zombie_remediate#module:guardrails.held_back).
  - "Remediation window: outside the days and times of O(settings) (C(remediation_days), C(remediation_start_time),
    C(remediation_end_time), C(remediation_time_zone)), every node's confirmed work is C(deferred: outside the
    remediation window), with when the window opens next. A window may wrap past midnight; its part after midnight
    belongs to the day it opened on."
  - "Alerts: with C(prometheus_url), C(/api/v1/alerts) is asked once (C(prometheus_timeout)); while an alert that the
    filters let through is active, no node of the batch is remediated and the reason names the alert. Fail closed -
    no answer, a timeout, a status other than 200 or an answer that is not a list of alerts holds every node back
    (C(prometheus_unreachable))."
  - "Fleet budget: with C(max_remediations_per_fleet_run), at most that many containers and host groups are handed
    to remediation across the whole run, whatever the batches; the most urgent go first (highest pids pressure,
    then most zombies), the rest are C(deferred) with that reason. Workloads the node's cure-loop brake will hold
    back take no place."
  - Fails, naming each setting and value, when a setting is bad (a time, a zone, a URL scheme, a negative count, a
    regular expression, a label matcher, a notification URL Apprise cannot send to).
version_added: "0.2.0"
author: zombie-cleaner contributors
options:
  settings:
    description: The role's guardrail settings (C(_zombie_cleaner_guardrail_settings)), keys without the C(zombie_cleaner_) prefix.
    type: dict
    required: true
  hosts:
    description: Every host of the play (C(ansible_play_hosts_all)); their C(__zombie_cleaner_scan) and C(__zombie_cleaner_remediation) are read.
    type: list
    elements: str
    required: true
  batch:
    description: The hosts of this batch (C(ansible_play_batch)).
    type: list
    elements: str
    required: true
attributes:
  check_mode:
    support: full
    details: Read-only; in check mode it decides the same (Prometheus is asked).
  diff_mode:
    support: none
  action:
    support: full
  platform:
    platforms: all
seealso:
  - module: zombie_remediate
  - module: zombie_scan
"""

EXAMPLES = r"""
- name: Decide the fleet-wide holds for this batch
  zombie_guardrails:
    settings: "{{ _zombie_cleaner_guardrail_settings }}"
    hosts: "{{ ansible_play_hosts_all }}"
    batch: "{{ ansible_play_batch }}"
  run_once: true
  register: __zombie_cleaner_guardrails
"""

RETURN = r"""
hosts:
  description: Per host of the batch, C(node) (a hold for all its work, or null) and C(items) (holds per container id or host group key).
  returned: success
  type: dict
  sample: {node1: {node: {reason: window, detail: "deferred: outside the remediation window (mon-fri 22:00-06:00 UTC; opens ...)"}, items: {}}}
node_hold:
  description: The hold for every node (window, alert or prometheus_unreachable), or null.
  returned: success
  type: dict
alerts:
  description: The alert decision, with C(alerts) naming the blocking alerts, or null.
  returned: success
  type: dict
window:
  description: Whether the window is open now, and the window in words.
  returned: success
  type: dict
  sample: {open: false, describe: "mon-fri 22:00-06:00 Europe/Berlin", always: false}
budget:
  description: The fleet budget - C(limit) (0 is none), C(used) by earlier batches, C(allotted), C(deferred), C(braked).
  returned: success
  type: dict
report:
  description: Lines for the play output.
  returned: success
  type: list
  elements: str
"""
