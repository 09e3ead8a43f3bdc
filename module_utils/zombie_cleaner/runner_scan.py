# -*- coding: utf-8 -*-
# Copyright: zombie-cleaner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Glue between the zombie_scan AnsibleModule and the plain scan logic: params in, result or a clear failure out.

One glue file per module, so that each module ships (and imports on the node) only what it uses.
"""

from __future__ import annotations

from ansible.module_utils.zombie_cleaner import config
from ansible.module_utils.zombie_cleaner.observe import scan
from ansible.module_utils.zombie_cleaner.record import state


def run_scan_module(module):
    params = module.params
    try:
        options = scan.ScanOptions.from_params(params)
    except config.ConfigError as error:
        module.fail_json(msg=str(error), parameter=error.parameter, value=error.value)
    try:
        result = scan.run_scan(options, check_mode=module.check_mode)
    except (state.StateError, scan.ScanTimeout) as error:
        module.fail_json(msg=str(error))
    except OSError as error:
        module.fail_json(msg="cannot read %s: %s" % (options.proc_root, error))
    # Kept in the result for reports, and raised as Ansible warnings for the operator.
    result["node_warnings"] = result.pop("warnings")
    for warning in result["node_warnings"]:
        module.warn(warning)
    diff = result.pop("diff")
    if module._diff:
        result["diff"] = diff
    result["dry_run"] = params["dry_run"]
    return result
