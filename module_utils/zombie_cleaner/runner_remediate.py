# -*- coding: utf-8 -*-
# Copyright: zombie-cleaner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Glue between the zombie_remediate AnsibleModule and the remediation ladder.

One glue file per module, so that each module ships (and imports on the node) only what it uses.
"""

from __future__ import annotations

from ansible.module_utils.zombie_cleaner import config, module_args
from ansible.module_utils.zombie_cleaner.cure import guardrails, remediate
from ansible.module_utils.zombie_cleaner.record import state


def run_remediate_module(module):
    params = module.params
    try:
        options = remediate.RemediationOptions(
            proc_root=params["proc_root"], state_path=params["state_path"], audit_log=module_args.audit_log(params),
            metrics_textfile_dir=params["metrics_textfile_dir"],
            container_timeout=params["container_timeout"], process_timeout=params["process_timeout"],
            replacement_wait=params["replacement_wait"],
            max_concurrent_containers=params["max_concurrent_containers"],
            max_remediations_per_run=params["max_remediations_per_run"], dry_run=params["dry_run"],
            allow_shim_kill_for_runtime_faults=params["allow_shim_kill_for_runtime_faults"],
            allow_pod_shim_kill=params["allow_pod_shim_kill"],
            reap_in_place=params["reap_in_place"], reap_host_zombies=params["reap_host_zombies"],
            binaries=module_args.binaries(params), runtime_files=module_args.runtime_files(params),
            guard=guardrails.GuardrailOptions(**params["guardrails"]))
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
