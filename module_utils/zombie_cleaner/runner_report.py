# -*- coding: utf-8 -*-
# Copyright: zombie-cleaner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Glue between the zombie_fleet_report AnsibleModule and the report builder (controller side).

One glue file per module, so that each module ships (and imports on the node) only what it uses.
"""

from __future__ import annotations

from ansible.module_utils.zombie_cleaner import config
from ansible.module_utils.zombie_cleaner.controller import report


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
