# -*- coding: utf-8 -*-
# Copyright: zombie-cleaner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The node's sighting state: a small versioned JSON file, locked and written atomically.

A container (or host group) is confirmed when some of its zombies, the SAME ones (pid + start time),
were seen in confirm_count consecutive runs that span at least (confirm_count - 1) x check_interval,
less a fifth for schedule jitter. Persistence, not mere recurrence, so a parent that reaps slowly is
never punished; time, not just runs, so quick re-runs (a retry, two schedules overlapping) never
confirm; and a reused PID or a reboot (boot_id) never continues an old count. Only the confirmed
zombies are cured: a zombie seen for the first time may be about to be reaped by its parent, which
then still learns its exit status.
"""

from __future__ import annotations

import errno
import fcntl
import json
import math
import os
import stat
import time

from ansible.module_utils.zombie_cleaner import waiter
from ansible.module_utils.zombie_cleaner.record import atomicfile

STATE_VERSION = 1
# Optional sections (added without a format change: older files simply lack them).
# A reboot does not end a cure loop: the cure history (the brake) and the last holds outlive it too.
KEPT_ACROSS_BOOTS = ("counters", "last_run", "histogram", "last_scan", "history", "remediations", "cure_history",
                     "guardrails")
HISTORY_LENGTH = 48
REMEDIATIONS_KEPT = 50
# Cron and AWX start runs a little early or late: confirmation needs this much less than the full span.
SCHEDULE_TOLERANCE = 0.2


class StateError(Exception):
    """The state file cannot be used (permissions, lock)."""


class LockBusy(StateError):
    """Another run holds the lock."""


def empty_state(boot_id):
    return {"version": STATE_VERSION, "boot_id": boot_id, "last_run": None,
            "containers": {}, "host_groups": {}, "counters": {}}


# Checks of what a file holds: a value of the wrong type would crash every run from then on.

def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_count(value):
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_map(value, check_key, check_value):
    return isinstance(value, dict) and all(check_key(k) and check_value(v) for k, v in value.items())


def _is_str(value):
    return isinstance(value, str)


def _number_or_none(value):
    return value is None or _is_number(value)


def _is_records(value):
    return isinstance(value, list) and all(isinstance(item, dict) for item in value)


def _is_histogram(value):
    return (isinstance(value, dict) and isinstance(value.get("bounds"), list) and all(map(_is_number, value["bounds"]))
            and isinstance(value.get("counts"), list) and all(map(_is_count, value["counts"]))
            and len(value["counts"]) == len(value["bounds"]) and _is_number(value.get("sum"))
            and _is_count(value.get("count")))


# What the metrics read of the last scan: numbers (or nothing) only.
_LAST_SCAN_NUMBERS = ("time", "check_interval", "zombies", "host_zombies", "tracked_containers", "confirmed",
                      "protected", "candidates", "containers_omitted")
_SNAPSHOT_NUMBERS = ("zombies", "pids_current", "pids_max", "pids_pressure", "sightings")


def _is_last_scan(value):
    return (isinstance(value, dict) and all(_number_or_none(value.get(key)) for key in _LAST_SCAN_NUMBERS)
            and _is_records(value.get("containers", []))
            and all(_number_or_none(item.get(key)) for item in value.get("containers", [])
                    for key in _SNAPSHOT_NUMBERS)
            and _is_records(value.get("host_groups", [])))


def _is_cure_history(value):
    """{workload: {"cures": [times], "recurring_since": time or None}} (cure/guardrails.py)."""
    return _is_map(value, _is_str, lambda entry: isinstance(entry, dict) and isinstance(entry.get("cures"), list)
                   and all(map(_is_number, entry["cures"])) and _number_or_none(entry.get("recurring_since")))


def _is_guardrails(value):
    """The last remediation's holds: {"run": the scan's time, "blocked": {reason: count}, ...}."""
    return (isinstance(value, dict) and _number_or_none(value.get("run"))
            and _is_map(value.get("blocked", {}), _is_str, _is_count)
            and _is_count(value.get("recurring_workloads", 0)))


# section: (check, what it must be)
SECTION_CHECKS = {
    "counters": (lambda value: _is_map(value, _is_str, lambda n: _is_number(n) and n >= 0),
                 "a mapping of counter names to numbers"),
    "last_run": (_is_number, "a time in seconds"),
    "histogram": (_is_histogram, "a mapping of bounds, counts, sum and count"),
    "last_scan": (_is_last_scan, "a mapping of the last scan's numbers"),
    "history": (_is_records, "a list of mappings"),
    "remediations": (_is_records, "a list of mappings"),
    "cure_history": (_is_cure_history, "a mapping of workloads to their cure times"),
    "guardrails": (_is_guardrails, "a mapping of the last run's holds"),
}


def entry_problem(entry):
    """Why a sighting entry cannot be used, or None."""
    if not isinstance(entry, dict):
        return "expected a mapping, got %s" % type(entry).__name__
    if not _is_count(entry.get("count")):
        return "count is not a whole number"
    if not _is_map(entry.get("zombies"), _is_str, _is_number):
        return "zombies is not a mapping of pid:start to first-seen times"
    if "runs" in entry and not _is_map(entry["runs"], _is_str, _is_count):
        return "runs is not a mapping of pid:start to run counts"
    if not all(_number_or_none(entry.get(key)) for key in ("since", "last_seen")):
        return "since or last_seen is not a time"
    return None


def _checked_sections(data):
    """(the usable sections of a state file's data, [what was dropped and why])."""
    kept, dropped = {}, []
    for key, (check, expected) in SECTION_CHECKS.items():
        value = data.get(key)
        if value is None:
            continue
        if check(value):
            kept[key] = value
        else:
            dropped.append("section %r (expected %s, got %s)" % (key, expected, _kind(value)))
    for section in ("containers", "host_groups"):
        value = data.get(section, {})
        if not isinstance(value, dict):
            dropped.append("section %r (expected a mapping of sighting entries, got %s)" % (section, _kind(value)))
            value = {}
        kept[section] = {}
        for key, entry in value.items():
            problem = entry_problem(entry)
            if problem:
                dropped.append("%s entry %r (%s)" % (section, key, problem))
            else:
                kept[section][key] = entry
    return kept, dropped


def _kind(value):
    return "%s %s" % (type(value).__name__, json.dumps(value)[:40])


def _read(path):
    """(bytes, None), (None, None) when missing, or (None, why the content is unusable). Never follows a link."""
    try:
        # O_NONBLOCK: a FIFO in place of the file must not block the run.
        descriptor = atomicfile.open_nofollow(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        return None, None
    except atomicfile.UnsafePath:
        return None, "a symbolic link (not followed)"
    except PermissionError as error:
        raise StateError("state_path=%r cannot be read: %s" % (path, error))
    kind = os.fstat(descriptor).st_mode
    if not stat.S_ISREG(kind):
        os.close(descriptor)
        if stat.S_ISDIR(kind):
            raise StateError("state_path=%r is a directory, not a file" % path)
        return None, "not a regular file"
    with os.fdopen(descriptor, "rb") as handle:
        try:
            return handle.read(), None
        except OSError as error:
            return None, "unreadable (%s)" % error


def _parse(content):
    """(data, None) or (None, why it is not a state file)."""
    try:
        data = json.loads(content.decode("utf-8"))
    except ValueError:            # UnicodeDecodeError included
        return None, "not a valid state file"
    if not isinstance(data, dict) or not _is_count(data.get("version")):
        return None, "not a valid state file"
    if data["version"] > STATE_VERSION:
        return None, "of unknown format version %r" % data["version"]
    return data, None


def _aside_name(path, now):
    return "%s.corrupt-%d" % (path, int(now or time.time()))


def load(path, boot_id, move_corrupt=True, now=None):
    """(state, warnings). Missing file: fresh state. Corrupt: moved aside, fresh state.
    A section of the wrong type is dropped with a warning; the rest is kept."""
    warnings = []
    content, unusable = _read(path)
    if content is None and unusable is None:
        return empty_state(boot_id), warnings
    data = None
    if unusable is None:
        data, unusable = _parse(content)
    if unusable:
        if move_corrupt:
            aside = atomicfile.keep_aside(path, _aside_name(path, now))
            warnings.append("state file %s was %s; kept it as %s and started fresh" % (path, unusable, aside))
        else:
            warnings.append("state file %s is %s; a real run would keep it aside and start fresh" % (path, unusable))
        return empty_state(boot_id), warnings
    sections, dropped = _checked_sections(data)
    if dropped:
        warnings.append(_dropped_warning(path, dropped, move_corrupt, now))
    state = empty_state(boot_id)
    # Counters, metrics and history outlive a reboot: Prometheus counters must not go down.
    for key in KEPT_ACROSS_BOOTS:
        if key in sections:
            state[key] = sections[key]
    if data.get("boot_id") != boot_id:
        warnings.append("node rebooted since the last run (boot id changed): sightings start over")
        return state, warnings
    state["containers"] = sections["containers"]
    state["host_groups"] = sections["host_groups"]
    return state, warnings


# A file with thousands of bad entries still makes a warning one can read.
DROPPED_NAMED = 10


def _dropped_warning(path, dropped, move_corrupt, now):
    named = "; ".join(dropped[:DROPPED_NAMED])
    if len(dropped) > DROPPED_NAMED:
        named += "; and %d more" % (len(dropped) - DROPPED_NAMED)
    text = "state file %s: dropped %s; the rest is kept" % (path, named)
    if not move_corrupt:
        return text + "; a real run keeps a copy of the file as it was"
    # The whole file as it was, for whoever wants to know how it came to be.
    copy = _aside_name(path, now)
    try:
        copy = atomicfile.keep_aside(path, copy, move=False)
    except OSError as error:
        return text + "; no copy kept (%s)" % error
    return text + "; the file as it was is kept as %s" % copy


def keep_recent(items, item, limit):
    """items + [item], only the newest limit kept."""
    return (list(items or []) + [item])[-limit:]


def zombie_key(zombie):
    return "%d:%d" % (zombie["pid"], zombie["start_time"])


def confirmation_age(confirm_count, check_interval):
    """How long a zombie must have been seen to be confirmed: the span of confirm_count runs
    check_interval apart, less SCHEDULE_TOLERANCE of it for a schedule's jitter."""
    return (confirm_count - 1) * check_interval * (1 - SCHEDULE_TOLERANCE)


def _previous_runs(entry):
    """{zombie key: runs it was seen in} of an entry. A file from before per-zombie run counts only knows
    that a zombie seen since the streak began was there in every run of it; of a later one, it knows
    of one run for sure."""
    if "runs" in entry:
        return entry["runs"]
    since = entry.get("since")
    return {key: entry["count"] if since is not None and first <= since else 1
            for key, first in entry["zombies"].items()}


def update_sightings(previous, groups, now, confirm_count, check_interval, identity=None):
    """New sighting entries for this run.

    previous: {key: entry} from the state file; groups: {key: group with "zombies"} seen now. A group
    whose zombies include one seen last run continues its streak (count); otherwise it starts at 1.
    Each zombie has its own first-seen time and run count: it is confirmed once seen in confirm_count
    runs over at least confirmation_age(); the group is confirmed when any of its zombies is. Keys not
    seen now are dropped (reset or vanished). identity(group) adds fields worth keeping.
    """
    needed_age = confirmation_age(confirm_count, check_interval)
    entries = {}
    for key, group in groups.items():
        seen_now = sorted({zombie_key(zombie) for zombie in group["zombies"]})
        old = previous.get(key) or {"count": 0, "zombies": {}}
        old_runs = _previous_runs(old)
        persisted = set(seen_now) & set(old["zombies"])
        first_seen = {zkey: old["zombies"].get(zkey, now) for zkey in seen_now}
        runs = {zkey: old_runs.get(zkey, 0) + 1 for zkey in seen_now}
        confirmed = [zkey for zkey in seen_now
                     if runs[zkey] >= confirm_count and now - first_seen[zkey] >= needed_age]
        entry = {
            "count": old["count"] + 1 if persisted else 1,
            "since": old.get("since", now) if persisted else now,
            "last_seen": now,
            "confirmed": bool(confirmed),
            "zombies": first_seen,
            "runs": runs,
            "confirmed_zombies": confirmed,
        }
        if identity:
            entry.update(identity(group))
        entries[key] = entry
    return entries


def first_seen_until(entry, until):
    """Keys of an entry's zombies first seen no later than until, the oldest first.

    A zombie stays in an entry only while every run sees it, so the earlier it was first seen, the more runs
    it was seen in and the longer: with until the newest first-seen time among a run's confirmed zombies,
    this is exactly that run's confirmed set, and in any later state the same set less the zombies gone."""
    return [key for key, first in sorted(entry["zombies"].items(), key=lambda item: (item[1], item[0]))
            if first <= until]


def sighting_view(state):
    """The part of the state that a run's 'changed' is about (not timestamps of the run)."""
    view = {}
    for section in ("containers", "host_groups"):
        view[section] = {key: {"count": entry["count"], "zombies": sorted(entry["zombies"])}
                         for key, entry in state[section].items()}
    return view


class Lock:
    """An exclusive flock on <state>.lock, waited for up to timeout seconds."""

    def __init__(self, path, timeout):
        self.path = path + ".lock"
        self.timeout = timeout
        self.handle = None

    def __enter__(self):
        try:
            descriptor = atomicfile.open_nofollow(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as error:
            raise StateError("cannot open lock file %s: %s" % (self.path, error))
        info = os.fstat(descriptor)
        # The lock is truncated and written: never a file that also has another name (a hard link).
        if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
            os.close(descriptor)
            raise StateError("lock file %s is not a plain file of its own (%d links): remove it"
                             % (self.path, info.st_nlink))
        self.handle = os.fdopen(descriptor, "r+")
        if not waiter.poll_until(self._try_lock, self.timeout, 0.1):
            self.handle.seek(0)
            holder = self.handle.read().strip() or "unknown"
            self.handle.close()
            raise LockBusy("another zombie-cleaner run (pid %s) holds %s; waited %.0fs. "
                           "Runs overlap: lengthen check_interval or look for a hung run"
                           % (holder, self.path, self.timeout))
        self.handle.seek(0)
        self.handle.truncate()
        self.handle.write(str(os.getpid()))
        self.handle.flush()
        return self

    def _try_lock(self):
        try:
            fcntl.flock(self.handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except OSError as error:
            if error.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            return False

    def __exit__(self, *exc):
        self.handle.seek(0)
        self.handle.truncate()
        fcntl.flock(self.handle, fcntl.LOCK_UN)
        self.handle.close()
        return False


def prepare_directory(path, create=True):
    """Create the state directory (0700) or check the existing one (root's, not writable by group or
    others, not a link), and prove it is writable, before any change. With create=False (check mode)
    nothing is created: an existing directory is only checked."""
    directory = os.path.dirname(os.path.abspath(path))
    try:
        exists = atomicfile.secure_directory(directory, "state_path=%r" % path, create)
    except OSError as error:      # UnsafePath included: its message names the path and the fix
        raise StateError(str(error) if isinstance(error, atomicfile.UnsafePath)
                         else "state_path=%r: directory %s: %s" % (path, directory, error))
    if exists and create and not os.access(directory, os.W_OK | os.X_OK):
        raise StateError("state_path=%r: directory %s is not writable" % (path, directory))


def save(path, state):
    """Write atomically and durably: temp file in the same directory, fsync, rename, fsync the directory."""
    atomicfile.write(path, json.dumps(state, sort_keys=True, separators=(",", ":")), mode=0o600)
