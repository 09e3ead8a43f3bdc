# -*- coding: utf-8 -*-
# Copyright: zombie-cleaner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Glue between AnsibleModule and the plain scan logic: params in, result or a clear failure out."""

from __future__ import annotations

from ansible.module_utils.zombie_cleaner import config, module_args, remediate, report, scan, state


def run_scan_module(module):
    params = module.params
    try:
        options = scan.ScanOptions(
            proc_root=params["proc_root"], state_path=params["state_path"],
            confirm_count=params["confirm_count"], whitelist_patterns=params["whitelist_patterns"],
            process_timeout=params["process_timeout"], check_interval=params["check_interval"],
            runtime_files=module_args.runtime_files(params), cgroup_root=params["cgroup_root"],
            audit_log=module_args.audit_log(params), metrics_textfile_dir=params["metrics_textfile_dir"])
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
            reap_in_place=params["reap_in_place"], reap_host_zombies=params["reap_host_zombies"],
            binaries=module_args.binaries(params), runtime_files=module_args.runtime_files(params))
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


def run_report_module(module):
    params = module.params
    try:
        threshold = config.positive_int("repeat_threshold", params["repeat_threshold"])
    except config.ConfigError as error:
        module.fail_json(msg=str(error), parameter=error.parameter, value=error.value)
    nodes = [report.node_from_slurp(host, result) for host, result in sorted(params["nodes"].items())]
    model = report.build(nodes, repeat_threshold=threshold)
    result = {"changed": False, "markdown_path": None, "html_path": None, "totals": model["totals"],
              "problems": model["problems"], "worst_containers": model["worst_containers"],
              "repeat_offenders": model["repeat_offenders"], "report": [report.totals_line(model["totals"])]}
    if module.check_mode:
        return result
    try:
        result["markdown_path"], result["html_path"] = report.write(params["output_dir"], model, params["title"])
    except OSError as error:
        module.fail_json(msg="output_dir=%r cannot be written: %s" % (params["output_dir"], error),
                         parameter="output_dir")
    result["changed"] = True
    return result
