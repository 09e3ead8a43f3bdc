# -*- coding: utf-8 -*-
# Copyright: zombie-cleaner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Options the zombie-cleaner modules share (module_args.RUNTIME_FILES_SPEC and OUTPUT_SPEC)."""

from __future__ import annotations


class ModuleDocFragment:

    RUNTIME_FILES = r"""
options:
  containerd_state_dir:
    description: containerd's state directory (bundles with C(config.json) and C(init.pid)).
    type: path
    default: /run/containerd
  docker_data_dir:
    description: Docker's data root (C(containers/<id>/config.v2.json)).
    type: path
    default: /var/lib/docker
  crio_storage_dir:
    description: CRI-O's run storage (C(overlay-containers/<id>/userdata/config.json)).
    type: path
    default: /run/containers/storage
  podman_storage_dir:
    description: podman's storage (C(overlay-containers/<id>/userdata/config.json)).
    type: path
    default: /var/lib/containers/storage
  pod_log_dir:
    description: The kubelet's pod log directory (C(<namespace>_<pod>_<uid>)).
    type: path
    default: /var/log/pods
"""

    OUTPUTS = r"""
options:
  audit_log_path:
    description:
      - JSON-lines audit log on the node, with the original design's fields (C(time), C(level), C(msg),
        C(component), C(container_id), C(pod_name), C(namespace), C(zombie_pid), C(zombie_ppid), C(zombie_cmdline)).
      - Empty turns the log off.
    type: path
    default: /var/log/zombie-cleaner/audit.log
  audit_log_max_size:
    description: The audit log is rotated before it would grow past this size (C(10M), C(512K), bytes).
    type: str
    default: 10M
  audit_log_backups:
    description: Rotated files kept (C(audit.log.1) ...); C(0) keeps none.
    type: int
    default: 3
  log_level:
    description:
      - Lowest level written to the audit log. C(debug) adds a line per zombie still present on every run;
        C(info) logs zombies when first seen and every remediation; C(warning) only confirmations and problems.
    type: str
    choices: [debug, info, warning, error]
    default: info
  metrics_textfile_dir:
    description:
      - node_exporter's textfile collector directory. C(zombie_cleaner.prom) is written there atomically at the end
        of every run. Empty turns metrics off; a missing directory gives a warning, not a failure.
    type: str
    default: /var/lib/prometheus/node-exporter
"""
