# -*- coding: utf-8 -*-
# Copyright: zombie-cleaner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""zombie_guardrails: the fleet-wide holds, decided on the controller before each remediation batch (run once per
batch). Nothing runs on a node: it reads the scans and the earlier batches' outcomes from hostvars, asks
Prometheus for its alerts (fail closed) and returns each node's holds for zombie_remediate's guardrails.held_back.
The logic is controller/holds.py."""

from __future__ import annotations

import ansible.module_utils
from ansible import constants as C
from ansible.plugins.action import ActionBase

for _path in C.DEFAULT_MODULE_UTILS_PATH:
    if _path not in ansible.module_utils.__path__:
        ansible.module_utils.__path__.append(_path)
from ansible.module_utils.zombie_cleaner import config  # noqa: E402
from ansible.module_utils.zombie_cleaner.controller import holds, notify  # noqa: E402


def _var(hostvars, host, name):
    try:
        value = hostvars[host].get(name)
    except KeyError:
        return None
    return value if isinstance(value, dict) else None


class ActionModule(ActionBase):

    _supports_check_mode = True
    _supports_async = False
    TRANSFERS_FILES = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        args = self._task.args
        settings = args.get("settings") or {}
        if not isinstance(settings, dict):
            return dict(result, failed=True, msg="settings must be a mapping, got %s" % config.type_name(settings))
        problems = holds.settings_problems(settings)
        # Once per batch, not per node: Apprise's own check of the notification URLs (it loads its services).
        problems += notify.apprise_problems(settings.get("notify_urls"))
        if problems:
            return dict(result, failed=True, msg="; ".join(problems), settings_problems=problems)
        hostvars = task_vars["hostvars"]
        scans, remediations = {}, {}
        for host in args.get("hosts") or []:
            scan = _var(hostvars, host, "__zombie_cleaner_scan")
            if scan and not scan.get("failed") and not scan.get("unreachable"):
                scans[host] = scan
            remediation = _var(hostvars, host, "__zombie_cleaner_remediation")
            if remediation and "outcomes" in remediation:
                remediations[host] = remediation
        decision = holds.decide(settings, scans, list(args.get("batch") or []), remediations)
        result.update(decision, changed=False)
        return result
