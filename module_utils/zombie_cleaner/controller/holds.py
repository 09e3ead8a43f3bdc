# -*- coding: utf-8 -*-
# Copyright: zombie-cleaner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fleet-wide guardrails, decided on the controller after the scans and before each remediation batch
(the zombie_guardrails action): the remediation window, Prometheus's alerts and the fleet budget. The node
adds its own (the pause file, the cure-loop brake: cure/guardrails.py) right before acting.

Also the check of every guardrail setting, run by the scan's settings check before any node is contacted.
"""

from __future__ import annotations

import re
import time

from ansible.module_utils.zombie_cleaner import config
from ansible.module_utils.zombie_cleaner.controller import alerts, windows
from ansible.module_utils.zombie_cleaner.cure import guardrails
from ansible.module_utils.zombie_cleaner.observe import cgroups

# Results of a remediation outcome that took a place in the fleet budget.
ATTEMPTED = ("cured", "reaped_in_place", "failed", "would_remediate")
NOTIFY_EVENTS = ("cured", "failed", "recurring", "unreachable") + tuple(
    reason for reason in guardrails.REASONS if reason != guardrails.RECURRING)
_URL_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://\S+$")

# Every setting with the check that refuses a bad value (ConfigError names the setting and the value).
_CHECKS = (
    ("max_remediations_per_fleet_run", config.non_negative_int),
    ("max_cures_per_workload", config.non_negative_int),
    ("cure_window", config.parse_duration),
    ("prometheus_timeout", config.parse_duration),
)


def notify_url_problems(urls):
    """Problems of zombie_cleaner_notify_urls by syntax alone (cheap: run for every node). Never echoes a URL:
    they carry tokens."""
    if urls in (None, ""):
        return []
    if isinstance(urls, str) or not isinstance(urls, (list, tuple)):
        return ["notify_urls must be a list of Apprise URLs (got %s)" % config.type_name(urls)]
    problems = []
    for index, url in enumerate(urls):
        if not isinstance(url, str) or not _URL_SCHEME.match(url.strip()):
            problems.append("notify_urls[%d] is not a URL of the form scheme://... (see Apprise's list of "
                            "services: slack://, msteams://, mailto://, json://...)" % index)
    return problems


def notify_on_problems(events):
    if isinstance(events, str) or not isinstance(events, (list, tuple)):
        return ["notify_on must be a list of events (got %s)" % config.type_name(events)]
    unknown = [str(item) for item in events if item not in NOTIFY_EVENTS + ("always",)]
    if unknown:
        return ["notify_on has unknown events %s; known: %s, or always" % (unknown, ", ".join(NOTIFY_EVENTS))]
    return []


def settings_problems(settings):
    """Every problem with the guardrail settings, as messages naming the setting and the value."""
    settings = settings or {}
    problems = []

    def check(function, *args):
        try:
            return function(*args)
        except config.ConfigError as error:
            problems.append("%s=%s is invalid: %s" % (error.parameter, error.value, error.expected))
        return None

    # Each window setting on its own, so that every bad one is named; then the window as a whole.
    window_parts = [check(windows.parse_days, settings.get("remediation_days", windows.DAYS)),
                    check(windows.parse_time, "remediation_start_time", settings.get("remediation_start_time", "00:00")),
                    check(windows.parse_time, "remediation_end_time", settings.get("remediation_end_time", "24:00"),
                          True),
                    check(windows.parse_zone, settings.get("remediation_time_zone", "UTC"))]
    if all(part is not None for part in window_parts):
        check(windows.from_settings, settings)
    check(alerts.parse_url, settings.get("prometheus_url"))
    check(alerts.from_settings, settings)
    for key, function in _CHECKS:
        if key in settings:
            check(function, key, settings[key])
    reset = settings.get("cure_history_reset", [])
    if not isinstance(reset, (str, list, tuple)):
        problems.append("cure_history_reset must be a workload or a list of workloads (got %s)"
                        % config.type_name(reset))
    problems += notify_url_problems(settings.get("notify_urls"))
    if "notify_on" in settings:
        problems += notify_on_problems(settings["notify_on"])
    return problems


def _item_key(item):
    return str(item.get("container_id") or item.get("key"))


def _label(item):
    if item.get("key"):
        return "host %s[%s]" % ((item.get("parent") or {}).get("name"), (item.get("parent") or {}).get("pid"))
    if item.get("pod"):
        return "%s/%s/%s" % (item.get("namespace"), item["pod"], item.get("container_name") or "")
    return item.get("name") or _item_key(item)[:12]


def candidates(host, scan, settings, now):
    """The work host's scan handed to the remediation that takes a place in the budget: (items, braked)."""
    to_cure = (scan or {}).get("to_cure") or {}
    history = (scan or {}).get("cure_history") or {}
    reset = settings.get("cure_history_reset") or []
    reset = [reset] if isinstance(reset, str) else list(reset)
    max_cures = config.non_negative_int("max_cures_per_workload", settings.get("max_cures_per_workload", 3))
    window = config.parse_duration("cure_window", settings.get("cure_window", "24h"))
    items, braked = [], []
    for item in list(to_cure.get("containers") or []) + list(to_cure.get("host_groups") or []):
        workload = guardrails.workload_key(item)
        entry = None if workload in reset else history.get(workload)
        if guardrails.recurring(entry, now, max_cures, window):
            braked.append((host, item))                  # the node holds it back: it takes no place
        else:
            items.append((host, item))
    return items, braked


def rank(pairs):
    """Most urgent first: highest pids pressure, then most zombies (as on the node), then host and key."""
    return sorted(pairs, key=lambda pair: cgroups.pressure_order(pair[1].get("pids_pressure"),
                                                                 pair[1].get("zombie_count"))
                  + (pair[0], _item_key(pair[1])))


def decide(settings, scans, batch, remediations=None, now=None, fetcher=alerts.fetch):
    """The holds for this batch of nodes.

    settings: the role's guardrail settings; scans: {host: zombie_scan result} of every node scanned this run;
    batch: the hosts about to be remediated; remediations: {host: zombie_remediate result} of the batches before.
    Returns {"hosts": {host: {"node": hold, "items": {key: hold}}}, "window", "alerts", "budget", "report"}; a hold
    is {"reason", "detail"} with a reason the node's metric and the notification name."""
    now = time.time() if now is None else now
    remediations = remediations or {}
    window = windows.from_settings(settings)
    alert_filter = alerts.from_settings(settings)
    node_hold = windows.decision(window, now)
    alert_hold = None
    if node_hold is None:
        # Only asked when the window is open: a closed window needs no answer, and a down Prometheus must not
        # hide that the window is why.
        url = alerts.parse_url(settings.get("prometheus_url"))
        timeout = config.parse_duration("prometheus_timeout", settings.get("prometheus_timeout", "10s"))
        alert_hold = alerts.decision(url, timeout, alert_filter, fetcher)
        node_hold = alert_hold and {"reason": alert_hold["reason"], "detail": alert_hold["detail"]}
    hosts = {host: {"node": node_hold, "items": {}} for host in batch}
    limit = config.non_negative_int("max_remediations_per_fleet_run", settings.get("max_remediations_per_fleet_run", 0))
    budget = {"limit": limit, "used": 0, "allotted": 0, "deferred": 0}
    report = []
    if node_hold:
        report.append("%s: no node is remediated in this batch" % node_hold["detail"])
    elif limit:
        # Places taken by the batches before; the rest goes, most urgent first, to the nodes not yet remediated
        # (this batch, and later batches already scanned), so an urgent container in a later batch keeps its place.
        used = sum(1 for result in remediations.values() for outcome in (result or {}).get("outcomes") or []
                   if outcome.get("result") in ATTEMPTED)
        pending, braked = [], []
        for host, scan in sorted(scans.items()):
            if host in remediations and host not in batch:
                continue
            found, held = candidates(host, scan, settings, now)
            pending += found
            braked += held
        ordered = rank(pending)
        room = max(0, limit - used)
        budget.update(used=used, allotted=min(room, len(ordered)), braked=len(braked))
        for position, (host, item) in enumerate(ordered):
            if position < room or host not in hosts:
                continue
            detail = ("deferred: the fleet budget (max_remediations_per_fleet_run=%d, %d used by earlier batches) "
                      "went to more urgent work; this is number %d of %d by pids pressure, then zombies"
                      % (limit, used, position + 1, len(ordered)))
            hosts[host]["items"][_item_key(item)] = {"reason": guardrails.BUDGET, "detail": detail}
            budget["deferred"] += 1
        if budget["deferred"]:
            report.append("fleet budget: %d of %d remediations this run, %d deferred (most urgent first)"
                          % (min(limit, used + len(ordered)), limit, budget["deferred"]))
    return {"hosts": hosts, "window": {"open": window.is_open(now), "describe": window.describe(),
                                       "always": window.always},
            "alerts": alert_hold, "node_hold": node_hold, "budget": budget, "report": report}
