# -*- coding: utf-8 -*-
# Copyright: zombie-cleaner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The node's sighting state: a small versioned JSON file, locked and written atomically.

A container is confirmed after confirm_count consecutive runs in which the
SAME zombies (pid + start time) were still there: persistence, not mere
recurrence, so a parent that reaps slowly is never punished, and a reused PID
or a reboot (boot_id) never continues an old count.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import time

from ansible.module_utils.zombie_cleaner import atomicfile

STATE_VERSION = 1
# Optional sections (added without a format change: older files simply lack them).
KEPT_ACROSS_BOOTS = ("counters", "last_run", "histogram", "last_scan", "history", "remediations")
HISTORY_LENGTH = 48
REMEDIATIONS_KEPT = 50


class StateError(Exception):
    """The state file cannot be used (permissions, lock)."""


class LockBusy(StateError):
    """Another run holds the lock."""


def empty_state(boot_id):
    return {"version": STATE_VERSION, "boot_id": boot_id, "last_run": None,
            "containers": {}, "host_groups": {}, "counters": {}}


def _valid(data):
    return (isinstance(data, dict) and isinstance(data.get("version"), int)
            and isinstance(data.get("containers"), dict) and isinstance(data.get("host_groups"), dict)
            and all(isinstance(entry, dict) and isinstance(entry.get("count"), int)
                    and isinstance(entry.get("zombies"), dict)
                    for section in ("containers", "host_groups") for entry in data[section].values()))


def load(path, boot_id, move_corrupt=True, now=None):
    """(state, warnings). Missing file: fresh state. Corrupt: moved aside, fresh state."""
    warnings = []
    try:
        with open(path, "r") as handle:
            text = handle.read()
    except FileNotFoundError:
        return empty_state(boot_id), warnings
    except IsADirectoryError:
        raise StateError("state_path=%r is a directory, not a file" % path)
    except PermissionError as error:
        raise StateError("state_path=%r cannot be read: %s" % (path, error))
    except (OSError, UnicodeDecodeError):
        text = None  # unreadable content is treated like corrupt content
    data = None
    if text is not None:
        try:
            data = json.loads(text)
        except ValueError:
            data = None
    if not _valid(data) or data["version"] > STATE_VERSION:
        reason = "unknown format version %r" % data["version"] if _valid(data) else "not a valid state file"
        if move_corrupt:
            aside = "%s.corrupt-%d" % (path, int(now or time.time()))
            os.replace(path, aside)
            warnings.append("state file %s was %s; kept it as %s and started fresh" % (path, reason, aside))
        else:
            warnings.append("state file %s is %s; a real run would keep it aside and start fresh" % (path, reason))
        return empty_state(boot_id), warnings
    state = empty_state(boot_id)
    # Counters, metrics and history outlive a reboot: Prometheus counters must not go down.
    for key in KEPT_ACROSS_BOOTS:
        if data.get(key) is not None:
            state[key] = data[key]
    if data.get("boot_id") != boot_id:
        warnings.append("node rebooted since the last run (boot id changed): sightings start over")
        return state, warnings
    state["containers"] = data["containers"]
    state["host_groups"] = data["host_groups"]
    return state, warnings


def keep_recent(items, item, limit):
    """items + [item], only the newest limit kept."""
    return (list(items or []) + [item])[-limit:]


def zombie_key(zombie):
    return "%d:%d" % (zombie["pid"], zombie["start_time"])


def update_sightings(previous, groups, now, confirm_count, identity=None):
    """New sighting entries for this run.

    previous: {key: entry} from the state file; groups: {key: group with
    "zombies"} seen now. A group whose zombies include one seen last run
    continues its streak; otherwise it starts at 1. Keys not seen now are
    dropped (reset or vanished). identity(group) adds fields worth keeping.
    """
    entries = {}
    for key, group in groups.items():
        seen_now = {zombie_key(zombie) for zombie in group["zombies"]}
        old = previous.get(key) or {}
        old_zombies = old.get("zombies") or {}
        persisted = seen_now & set(old_zombies)
        count = old.get("count", 0) + 1 if persisted else 1
        entry = {
            "count": count,
            "since": old.get("since", now) if persisted else now,
            "last_seen": now,
            "confirmed": count >= confirm_count,
            "zombies": {zkey: old_zombies.get(zkey, now) for zkey in sorted(seen_now)},
        }
        if identity:
            entry.update(identity(group))
        entries[key] = entry
    return entries


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
            self.handle = os.fdopen(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600), "r+")
        except OSError as error:
            raise StateError("cannot open lock file %s: %s" % (self.path, error))
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                fcntl.flock(self.handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as error:
                if error.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                if time.monotonic() >= deadline:
                    self.handle.seek(0)
                    holder = self.handle.read().strip() or "unknown"
                    self.handle.close()
                    raise LockBusy("another zombie-cleaner run (pid %s) holds %s; waited %.0fs. "
                                   "Runs overlap: lengthen check_interval or look for a hung run"
                                   % (holder, self.path, self.timeout))
                time.sleep(0.1)
        self.handle.seek(0)
        self.handle.truncate()
        self.handle.write(str(os.getpid()))
        self.handle.flush()
        return self

    def __exit__(self, *exc):
        self.handle.seek(0)
        self.handle.truncate()
        fcntl.flock(self.handle, fcntl.LOCK_UN)
        self.handle.close()
        return False


def prepare_directory(path):
    """Create the state directory (0700) and prove it is writable, before any change."""
    directory = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
    except OSError as error:
        raise StateError("state_path=%r: cannot create directory %s: %s" % (path, directory, error))
    if not os.access(directory, os.W_OK | os.X_OK):
        raise StateError("state_path=%r: directory %s is not writable" % (path, directory))


def save(path, state):
    """Write atomically and durably: temp file in the same directory, fsync, rename, fsync the directory."""
    atomicfile.write(path, json.dumps(state, sort_keys=True, separators=(",", ":")), mode=0o600)
