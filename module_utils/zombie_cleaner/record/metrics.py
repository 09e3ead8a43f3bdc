# -*- coding: utf-8 -*-
# Copyright: zombie-cleaner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Prometheus metrics for node_exporter's textfile collector.

Everything is rendered from the state file (counters, the duration
histogram, the last scan's gauges), so the scan and the remediation runs each
write the whole file and counters stay monotonic across runs.
"""

from __future__ import annotations

import math
import os
import stat

from ansible.module_utils.zombie_cleaner.record import atomicfile

TEXTFILE_NAME = "zombie_cleaner.prom"
# A scan of a busy node takes milliseconds to a second; process_timeout caps it at seconds.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
CONTAINER_LABELS = ("container_id", "namespace", "pod", "container", "runtime")
# Why confirmed work was held back (cure/guardrails.py REASONS): every reason has a series on every run.
BLOCK_REASONS = ("window", "alert", "prometheus_unreachable", "budget", "recurring", "paused")

# (state counter key, metric name, help). The first three are the original design's.
COUNTERS = (
    ("containers_cleaned_total", "zombie_cleaner_containers_cleaned_total",
     "Containers remediated (zombies gone after a rung of the ladder, reaped in place or restarted)."),
    ("cleanup_failures_total", "zombie_cleaner_cleanup_failures_total",
     "Remediations that failed: every rung tried, zombies still there or the workload not back."),
    ("container_operation_timeouts_total", "zombie_cleaner_container_operation_timeouts_total",
     "Container operations that hit container_timeout."),
    ("containers_reaped_in_place_total", "zombie_cleaner_containers_reaped_in_place_total",
     "Containers cured by reaping in place (the parent made to call wait4; no restart). Part of cleaned_total."),
    ("zombies_reaped_in_place_total", "zombie_cleaner_zombies_reaped_in_place_total",
     "Zombies reaped in place by their own parent."),
    ("reap_left_attached_total", "zombie_cleaner_reap_left_attached_total",
     "Reaps in place whose tracer could not release the parent in time (an alert: the parent may still be held)."),
)


def empty_histogram():
    return {"bounds": list(DURATION_BUCKETS), "counts": [0] * len(DURATION_BUCKETS), "sum": 0.0, "count": 0}


def observe(histogram, seconds):
    """The persisted duration histogram with one more observation (reset if the buckets changed)."""
    if not histogram or list(histogram.get("bounds") or []) != list(DURATION_BUCKETS):
        histogram = empty_histogram()
    counts = [count + (1 if seconds <= bound else 0) for count, bound in zip(histogram["counts"], DURATION_BUCKETS)]
    return {"bounds": list(DURATION_BUCKETS), "counts": counts, "sum": histogram["sum"] + seconds,
            "count": histogram["count"] + 1}


def escape_label(value):
    return str("" if value is None else value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _escape_help(text):
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _number(value):
    if value is None:
        return "NaN"
    if isinstance(value, float):
        if math.isinf(value):
            return "+Inf" if value > 0 else "-Inf"
        return repr(value)
    return str(int(value))


def _labels(pairs):
    if not pairs:
        return ""
    return "{" + ",".join('%s="%s"' % (key, escape_label(value)) for key, value in pairs) + "}"


class _Text:
    def __init__(self):
        self.lines = []

    def family(self, name, kind, help_text, samples):
        """samples: [(suffix, [(label, value)...], number)]"""
        self.lines.append("# HELP %s %s" % (name, _escape_help(help_text)))
        self.lines.append("# TYPE %s %s" % (name, kind))
        for suffix, labels, value in samples:
            self.lines.append("%s%s%s %s" % (name, suffix, _labels(labels), _number(value)))


def container_labels(container):
    return [("container_id", container.get("container_id")), ("namespace", container.get("namespace")),
            ("pod", container.get("pod")), ("container", container.get("container")),
            ("runtime", container.get("runtime"))]


def render(state):
    """The whole textfile for this node's state."""
    text = _Text()
    last = state.get("last_scan") or {}
    _scan_families(text, state, last)
    _container_families(text, last.get("containers") or [])
    _node_families(text, last.get("node_pids") or {})
    _guardrail_families(text, state)
    _schedule_families(text, state, last)
    return "\n".join(text.lines) + "\n"


def _scan_families(text, state, last):
    """The original design's metrics: zombies found, the counters, the scan's duration, tracked containers."""
    counters = state.get("counters") or {}
    text.family("zombie_cleaner_zombie_processes_found", "gauge", "Zombie processes found by the last scan.",
                [("", [], last.get("zombies", 0))])
    for key, name, help_text in COUNTERS:
        text.family(name, "counter", help_text, [("", [], counters.get(key, 0))])
    histogram = state.get("histogram") or empty_histogram()
    samples = [("_bucket", [("le", _number(float(bound)))], count)
               for bound, count in zip(DURATION_BUCKETS, histogram["counts"])]
    samples += [("_bucket", [("le", "+Inf")], histogram["count"]), ("_sum", [], float(histogram["sum"])),
                ("_count", [], histogram["count"])]
    text.family("zombie_cleaner_check_duration_seconds", "histogram",
                "Duration of a scan: /proc read, attribution and state update.", samples)
    text.family("zombie_cleaner_tracked_containers", "gauge", "Containers with a sighting count above zero.",
                [("", [], last.get("tracked_containers", 0))])
    text.family("zombie_cleaner_confirmed_containers", "gauge",
                "Containers confirmed by the last scan (zombies in confirm_count consecutive runs).",
                [("", [], last.get("confirmed", 0))])
    text.family("zombie_cleaner_host_zombie_processes", "gauge",
                "Zombies of the last scan outside any container (never remediated).",
                [("", [], last.get("host_zombies", 0))])


def _container_families(text, containers):
    """Per container of the last scan: its zombies and its pids cgroup."""
    text.family("zombie_cleaner_container_zombie_processes", "gauge",
                "Zombies per container in the last scan; containers without zombies have no series.",
                [("", container_labels(item), item.get("zombies", 0)) for item in containers])
    with_pids = [item for item in containers if item.get("pids_current") is not None]
    text.family("zombie_cleaner_container_pids_current", "gauge",
                "pids.current of the container's pids cgroup (zombies count against it).",
                [("", container_labels(item), item["pids_current"]) for item in with_pids])
    text.family("zombie_cleaner_container_pids_max", "gauge",
                "pids.max of the container's pids cgroup; no series when unlimited.",
                [("", container_labels(item), item["pids_max"]) for item in with_pids
                 if item.get("pids_max") is not None])
    text.family("zombie_cleaner_container_pids_pressure", "gauge",
                "Highest pids.current / pids.max of the container's cgroup and its ancestors (1 = forks fail).",
                [("", container_labels(item), float(item["pids_pressure"])) for item in with_pids
                 if item.get("pids_pressure") is not None])


def _node_families(text, node_pids):
    """The node's tasks against its PID budget."""
    text.family("zombie_cleaner_node_tasks", "gauge",
                "Tasks (threads) on the node in the last scan: each takes a PID.",
                [("", [], node_pids["tasks"])] if node_pids.get("tasks") is not None else [])
    text.family("zombie_cleaner_node_pids_pressure", "gauge",
                "The node's tasks / min(kernel.pid_max, kernel.threads-max): at 1 no process can fork anywhere "
                "on the node (the kubelet's pid.available eviction signal counts the same).",
                [("", [], float(node_pids["pressure"]))] if node_pids.get("pressure") is not None else [])


def _guardrail_families(text, state):
    """What the last remediation held back (cure/guardrails.py)."""
    guard = state.get("guardrails") or {}
    # The holds of the remediation that followed the last scan; a scan no remediation followed held nothing back.
    current = guard.get("run") is not None and guard.get("run") == state.get("last_run")
    blocked = (guard.get("blocked") or {}) if current else {}
    text.family("zombie_cleaner_remediation_blocked", "gauge",
                "Confirmed containers (and host groups) the last run held back, by reason: window, alert, "
                "prometheus_unreachable, budget, recurring, paused.",
                [("", [("reason", reason)], blocked.get(reason, 0)) for reason in BLOCK_REASONS])
    text.family("zombie_cleaner_recurring_workloads", "gauge",
                "Workloads the cure-loop brake holds back (cured max_cures_per_workload times within cure_window), "
                "as of the last remediation.",
                [("", [], guard.get("recurring_workloads", 0))])


def _schedule_families(text, state, last):
    """What alerts on a schedule that stopped compare."""
    text.family("zombie_cleaner_check_interval_seconds", "gauge",
                "The configured check_interval: alerts compare the time since the last success with it.",
                [("", [], float(last.get("check_interval") or 0))])
    text.family("zombie_cleaner_last_success_timestamp_seconds", "gauge",
                "Unix time the last scan completed (a failed scan writes nothing, so this stops moving).",
                # Only a completed scan writes last_run: a failed one leaves the state untouched.
                [("", [], float(state.get("last_run") or 0))])


class TextfileError(Exception):
    """The textfile directory cannot be written."""


def write_textfile(directory, text, name=TEXTFILE_NAME):
    """Write atomically: node_exporter reads only *.prom, so a reader sees the old file or the new one."""
    if not os.path.isdir(directory):
        raise TextfileError("metrics_textfile_dir=%r does not exist: install node_exporter's textfile collector "
                            "there, or set metrics_textfile_dir to its directory (empty turns metrics off)"
                            % directory)
    try:
        # 0644: node_exporter runs as its own user. No directory fsync: a lost textfile is rewritten next run.
        return atomicfile.write(os.path.join(directory, name), text, mode=0o644, durable=False)
    except OSError as error:
        raise TextfileError("metrics_textfile_dir=%r is not writable: %s" % (directory, error))


def shared_directory_warning(directory):
    """A warning when group or others can write to the textfile directory, else None.

    The directory is node_exporter's, not the job's: its owner and mode are never changed, and writing
    there stays safe (a temp file of the job's own, O_EXCL | O_NOFOLLOW, then a rename that replaces a
    link instead of following it). But whoever can write there can replace or forge the metrics."""
    mode = stat.S_IMODE(os.stat(directory).st_mode)
    if mode & (stat.S_IWGRP | stat.S_IWOTH):
        return ("metrics_textfile_dir=%r is writable by group or others (mode %04o): they can replace or forge "
                "%s; chmod go-w %s" % (directory, mode, TEXTFILE_NAME, directory))
    return None


def publish(directory, state):
    """Render and write; returns (path or None, warning or None). Empty directory: metrics are off."""
    if not directory:
        return None, None
    try:
        path = write_textfile(directory, render(state))
        return path, shared_directory_warning(directory)
    except (TextfileError, OSError) as error:
        return None, "metrics not written: %s" % error
