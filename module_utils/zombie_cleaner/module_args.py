# -*- coding: utf-8 -*-
# Copyright: zombie-cleaner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Argument specs shared by the modules, so every module takes the same keys.

The specs are the one source of every module default: the options objects (scan.ScanOptions,
remediate.RemediationOptions) take theirs from here (settings), and tests/unit/test_module_specs.py checks
each module's DOCUMENTATION against its spec."""

from __future__ import annotations

import copy

from ansible.module_utils.zombie_cleaner import config
from ansible.module_utils.zombie_cleaner.record import audit
from ansible.module_utils.zombie_cleaner.config import DEFAULT_WHITELIST

# Where the runtimes keep their files; settable for fixture trees.
RUNTIME_FILES_SPEC = dict(
    containerd_state_dir=dict(type="path", default="/run/containerd"),
    docker_data_dir=dict(type="path", default="/var/lib/docker"),
    crio_storage_dir=dict(type="path", default="/run/containers/storage"),
    podman_storage_dir=dict(type="path", default="/var/lib/containers/storage"),
    pod_log_dir=dict(type="path", default="/var/log/pods"),
)

# What every run leaves behind on the node besides its state: the audit log and the metrics textfile.
OUTPUT_SPEC = dict(
    audit_log_path=dict(type="path", default="/var/log/zombie-cleaner/audit.log"),
    audit_log_max_size=dict(type="str", default="10M"),
    audit_log_backups=dict(type="int", default=3),
    log_level=dict(type="str", default="info", choices=["debug", "info", "warning", "error"]),
    metrics_textfile_dir=dict(type="str", default="/var/lib/prometheus/node-exporter"),
)

# The outputs a caller outside Ansible gets only when it asks for them (module_args.settings).
NODE_OUTPUTS = ("audit_log_path", "metrics_textfile_dir")

SCAN_ARGUMENT_SPEC = dict(
    proc_root=dict(type="path", default="/proc"),
    state_path=dict(type="path", default="/var/lib/zombie-cleaner/state.json"),
    confirm_count=dict(type="int", default=3),
    whitelist_patterns=dict(type="list", elements="str", default=list(DEFAULT_WHITELIST)),
    process_timeout=dict(type="str", default="10s"),
    check_interval=dict(type="str", default="5m"),
    dry_run=dict(type="bool", default=False),
    cgroup_root=dict(type="path", default="/sys/fs/cgroup"),
    reap_host_zombies=dict(type="bool", default=False),
    # Used on the controller by the zombie_scan action plugin, which never passes them to the node.
    results_dir=dict(type="str", default=""),
    quiet_group=dict(type="str", default=""),
    settings_check=dict(type="dict", default={}),
    role_variables=dict(type="bool", default=False),
    **dict(RUNTIME_FILES_SPEC, **OUTPUT_SPEC)
)


def audit_log(params):
    """The AuditLog the parameters ask for; raises config.ConfigError."""
    return audit.AuditLog(params["audit_log_path"], config.log_level(params["log_level"]),
                          config.parse_size("audit_log_max_size", params["audit_log_max_size"]),
                          config.non_negative_int("audit_log_backups", params["audit_log_backups"]))


def runtime_files(params):
    return {key: params[key] for key in RUNTIME_FILES_SPEC}


# The node's guardrails (cure/guardrails.py): the pause file, the cure-loop brake, and what the controller held back.
GUARDRAILS_SPEC = dict(
    pause_file=dict(type="str", default="/etc/zombie-cleaner/pause"),
    max_cures_per_workload=dict(type="int", default=3),
    cure_window=dict(type="str", default="24h"),
    cure_history_reset=dict(type="list", elements="str", default=[]),
    held_back=dict(type="dict", default={}),
)

REMEDIATE_ARGUMENT_SPEC = dict(
    containers=dict(type="list", elements="dict", required=True),
    host_groups=dict(type="list", elements="dict", default=[]),
    reap_in_place=dict(type="bool", default=True),
    reap_host_zombies=dict(type="bool", default=False),
    proc_root=dict(type="path", default="/proc"),
    state_path=dict(type="path", default="/var/lib/zombie-cleaner/state.json"),
    container_timeout=dict(type="str", default="30s"),
    process_timeout=dict(type="str", default="10s"),
    replacement_wait=dict(type="str", default="30s"),
    max_concurrent_containers=dict(type="int", default=10),
    max_remediations_per_run=dict(type="int", default=5),
    allow_shim_kill_for_runtime_faults=dict(type="bool", default=False),
    allow_pod_shim_kill=dict(type="bool", default=False),
    dry_run=dict(type="bool", default=False),
    docker_bin=dict(type="str", default="docker"),
    podman_bin=dict(type="str", default="podman"),
    ctr_bin=dict(type="str", default="ctr"),
    crictl_bin=dict(type="str", default="crictl"),
    guardrails=dict(type="dict", options=GUARDRAILS_SPEC, apply_defaults=True),
    **dict(RUNTIME_FILES_SPEC, **OUTPUT_SPEC)
)


def binaries(params):
    return {name: params[name + "_bin"] for name in ("docker", "podman", "ctr", "crictl")}


REPORT_ARGUMENT_SPEC = dict(
    nodes=dict(type="dict", required=True),
    output_dir=dict(type="path", required=True),
    title=dict(type="str", default="zombie-cleaner fleet report"),
    repeat_threshold=dict(type="int", default=2),
)


def settings(spec, given, off=()):
    """A module's parameters as its argument spec makes them: every default, then what was given.

    For the options objects built outside Ansible (tests, benchmarks): a name given as None counts as not
    given, as it did for their keyword defaults, and the names in off (the node's outputs) are empty unless
    given, so such a caller never writes an audit log or metrics it did not ask for."""
    unknown = sorted(set(given) - set(spec))
    if unknown:
        raise TypeError("unknown settings: %s" % ", ".join(unknown))
    params = {name: copy.deepcopy(option.get("default")) for name, option in spec.items()}
    params.update({name: "" for name in off})
    params.update({name: value for name, value in given.items() if value is not None})
    return params
