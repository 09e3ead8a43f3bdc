# -*- coding: utf-8 -*-
# Copyright: zombie-cleaner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The node's own guardrails, decided right before acting: the pause file, the cure-loop brake, and the
holds the controller decided for the fleet (window, alerts, budget). Pure functions over plain data, apart
from the one look at the pause file; standard library only (nodes run Python 3.8).

Why a brake: a workload that makes zombies again right after every cure would be restarted (or reaped)
forever, every check_interval, and nobody would look. A workload cured max_cures_per_workload times within
cure_window is `recurring`: no longer cured automatically, reported with its prevention advice, counted and
notified, until the window slides past its oldest cure, or cure_history_reset names it. A reap in place counts
as a cure like a restart does: it hides the same bug and takes the same exit statuses, so there is one limit.
"""

from __future__ import annotations

import os
import time

from ansible.module_utils.zombie_cleaner import config

# Why confirmed work was held back (the metric's reason label).
WINDOW = "window"
ALERT = "alert"
PROMETHEUS_UNREACHABLE = "prometheus_unreachable"
BUDGET = "budget"
RECURRING = "recurring"
PAUSED = "paused"
REASONS = (WINDOW, ALERT, PROMETHEUS_UNREACHABLE, BUDGET, RECURRING, PAUSED)
# Decided by the controller for the fleet; the node decides the others itself.
CONTROLLER_REASONS = (WINDOW, ALERT, PROMETHEUS_UNREACHABLE, BUDGET)

DEFAULT_PAUSE_FILE = "/etc/zombie-cleaner/pause"
# Cure times kept per workload (enough for any sensible max_cures_per_workload), and workloads kept.
CURES_KEPT = 50
WORKLOADS_KEPT = 500
PAUSE_NOTE_BYTES = 300


class GuardrailOptions:
    """Validated node-side guardrail settings. Raises config.ConfigError naming the bad one."""

    def __init__(self, pause_file=DEFAULT_PAUSE_FILE, max_cures_per_workload=3, cure_window="24h",
                 cure_history_reset=None, held_back=None):
        self.pause_file = pause_file or ""
        self.max_cures = config.non_negative_int("max_cures_per_workload", max_cures_per_workload)
        self.cure_window = config.parse_duration("cure_window", cure_window)
        reset = cure_history_reset or []
        self.reset = [reset] if isinstance(reset, str) else [str(item) for item in reset]
        held_back = held_back or {}
        if not isinstance(held_back, dict):
            raise config.ConfigError("held_back", held_back, "expected a mapping with node and items")
        self.node_hold = _checked_hold(held_back.get("node"))
        items = held_back.get("items") or {}
        if not isinstance(items, dict):
            raise config.ConfigError("held_back.items", items, "expected a mapping of container id to hold")
        self.item_holds = {str(key): _checked_hold(value) for key, value in items.items()}


def _checked_hold(hold):
    if not hold:
        return None
    if not isinstance(hold, dict) or hold.get("reason") not in CONTROLLER_REASONS:
        raise config.ConfigError("held_back", hold, "expected {reason: one of %s, detail: text}"
                                 % ", ".join(CONTROLLER_REASONS))
    return {"reason": hold["reason"], "detail": str(hold.get("detail") or "deferred: %s" % hold["reason"])}


def pause_reason(path, now=None):
    """Why this node is paused (the pause file exists), or None. Whatever is at the path counts, a link or a
    directory too (never followed); the file's first line, if any, is the on-call engineer's note."""
    if not path:
        return None
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return None
    except OSError as error:
        # Cannot tell whether it is there: paused (fail closed).
        return "paused: %s cannot be checked (%s)" % (path, error)
    note = ""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        try:
            note = os.read(descriptor, PAUSE_NOTE_BYTES).decode("utf-8", "replace").strip().splitlines()
            note = note[0].strip() if note else ""
        finally:
            os.close(descriptor)
    except OSError:
        pass
    since = time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(info.st_mtime))
    return "paused: %s exists (since %s)%s" % (path, since, ": " + note if note else "")


def workload_key(record):
    """The identity the brake counts cures by: the record's workload (namespace/owner/container of a pod,
    the container name for Docker and podman), the parent's name for host zombies."""
    if record.get("workload"):
        return str(record["workload"])
    # A host group (its "parent"), or a host group's outcome (its key in container_id, its "parents").
    parent = record.get("parent") or ((record.get("parents") or [{}])[0]
                                      if str(record.get("container_id")).startswith("host:") else {})
    if parent.get("name"):
        return "host/%s" % parent["name"]
    return str(record.get("container_id") or record.get("key") or "?")


def _item_key(record):
    return str(record.get("container_id") or record.get("key"))


def recent_cures(entry, now, window):
    return [when for when in (entry or {}).get("cures") or [] if now - when < window]


def recurring(entry, now, max_cures, window):
    """None, or {"cures": n, "first": t, "until": when it may be cured again} when the brake holds."""
    if max_cures <= 0:
        return None
    cures = sorted(recent_cures(entry, now, window))
    if len(cures) < max_cures:
        return None
    # It may be cured again once fewer than max_cures cures lie within the window.
    return {"cures": len(cures), "first": cures[0], "until": cures[-max_cures] + window}


def reset_history(history, names):
    """(history without the named workloads, the names that had a history)."""
    history = dict(history or {})
    done = [name for name in names if history.pop(name, None) is not None]
    return history, done


def _clock(when):
    return time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(when))


class RunGuard:
    """One run's guardrails on this node: what holds each record back, and what the run leaves in the state."""

    def __init__(self, options, history, now, paused=None):
        self.options = options
        self.now = now
        self.paused = paused
        self.history, self.reset_done = reset_history(history, options.reset)
        self.newly_recurring = set()

    def hold(self, record):
        """(reason, detail, extra fields) that hold this record back, or None."""
        if self.paused:
            return PAUSED, self.paused + "; remove the file to let this node remediate", {}
        for hold in (self.options.node_hold, self.options.item_holds.get(_item_key(record))):
            if hold:
                return hold["reason"], hold["detail"], {}
        workload = workload_key(record)
        entry = self.history.get(workload)
        brake = recurring(entry, self.now, self.options.max_cures, self.options.cure_window)
        if brake:
            newly = not (entry or {}).get("recurring_since")
            if newly:
                self.newly_recurring.add(workload)
            detail = ("recurring: %s was cured %d times within %s (first at %s); not cured automatically until %s "
                      "or until cure_history_reset names it; it needs its prevention (see the fleet report)"
                      % (workload, brake["cures"], config.duration_text(self.options.cure_window),
                         _clock(brake["first"]), _clock(brake["until"])))
            return RECURRING, detail, {"recurring": dict(brake, workload=workload, newly=newly)}
        return None

    def apply(self, outcome, record):
        """Mark outcome held back when a guardrail holds record; returns True if it did."""
        held = self.hold(record)
        if not held:
            return False
        reason, detail, extra = held
        outcome.update(extra, result=RECURRING if reason == RECURRING else "deferred", reason=detail,
                       blocked_reason=reason, workload=outcome.get("workload") or workload_key(record))
        return True

    def after(self, current, outcomes, now, cured_results):
        """The run's cures into the cure history, and the run's holds into the state's guardrails section."""
        history = dict(self.history)
        for outcome in outcomes:
            if outcome.get("result") in cured_results:
                workload = outcome.get("workload") or workload_key(outcome)
                entry = dict(history.get(workload) or {})
                entry["cures"] = (list(entry.get("cures") or []) + [now])[-CURES_KEPT:]
                history[workload] = entry
        kept = {}
        recurring_now = 0
        for workload, entry in history.items():
            cures = recent_cures(entry, now, self.options.cure_window)
            if not cures:
                continue                                   # the window slid past every cure
            brake = recurring(entry, now, self.options.max_cures, self.options.cure_window)
            # Recurring from the first run the brake held it back (a third cure alone is not yet a refusal).
            since = entry.get("recurring_since") or (now if workload in self.newly_recurring else None)
            recurring_now += 1 if brake else 0
            kept[workload] = {"cures": cures, "recurring_since": since if brake else None}
        newest = sorted(kept.items(), key=lambda pair: -max(pair[1]["cures"]))[:WORKLOADS_KEPT]
        current["cure_history"] = dict(newest)
        blocked = {reason: 0 for reason in REASONS}
        details = {}
        for outcome in outcomes:
            reason = outcome.get("blocked_reason")
            if reason in blocked:
                blocked[reason] += 1
                details.setdefault(reason, outcome.get("reason"))
        current["guardrails"] = {"run": current.get("last_run"), "time": now, "blocked": blocked,
                                 "details": details, "recurring_workloads": recurring_now,
                                 "paused": self.paused, "reset": list(self.reset_done)}
        return current


def blocked_counts(outcomes):
    """{reason: items held back for it} of a run's outcomes, every reason present."""
    counts = {reason: 0 for reason in REASONS}
    for outcome in outcomes:
        if outcome.get("blocked_reason") in counts:
            counts[outcome["blocked_reason"]] += 1
    return counts
