# -*- coding: utf-8 -*-
# Copyright: zombie-cleaner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Glue between the zombie_remediate AnsibleModule and the remediation ladder.

One glue file per module, so that each module ships (and imports on the node) only what it uses.
"""

from __future__ import annotations

from ansible.module_utils.zombie_cleaner import config
from ansible.module_utils.zombie_cleaner.cure import remediate
from ansible.module_utils.zombie_cleaner.record import state


def run_remediate_module(module):
    params = module.params
    try:
        options = remediate.RemediationOptions.from_params(params)
    except config.ConfigError as error:
        module.fail_json(msg=str(error), parameter=error.parameter, value=error.value)
    for section, required in (("containers", ("container_id", "zombies")), ("host_groups", ("key", "parent", "zombies"))):
        for index, record in enumerate(params[section]):
            missing = [key for key in required if key not in record]
            if missing:
                module.fail_json(msg="%s[%d] lacks %s: pass the records of a zombie_scan result" % (
                    section, index, ", ".join(missing)), parameter=section)
    try:
        result = remediate.run_remediation(options, params["containers"], check_mode=module.check_mode,
                                           host_groups=params["host_groups"])
    except state.StateError as error:
        module.fail_json(msg=str(error))
    for warning in result["node_warnings"]:
        module.warn(warning)
    failed = result["summary"]["failed"]
    if failed:
        result["failed"] = True
        result["msg"] = "%d of %d remediations failed on this node" % (failed, len(result["outcomes"]))
    return result
