# -*- coding: utf-8 -*-
# Copyright: zombie-cleaner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The node's audit log: JSON lines per sighting and per action, with the original design's fields."""

from __future__ import annotations

import errno
import fcntl
import json
import os
import stat
import time

from ansible.module_utils.zombie_cleaner import waiter
from ansible.module_utils.zombie_cleaner.record import atomicfile

LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40}
COMPONENT = "zombie-cleaner"

_RESULT_LEVEL = {"cured": "info", "reaped_in_place": "info", "would_remediate": "info", "skipped": "debug", "deferred": "warning",
                 "stale": "info", "failed": "error"}


def line(level, msg, container=None, zombie=None, now=None, **extra):
    """A record with the original design's fields (zombie_cmdline: a zombie's name, its cmdline is empty)."""
    container = container or {}
    zombie = zombie or {}
    record = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now if now is not None else time.time())),
        "level": level,
        "msg": msg,
        "component": COMPONENT,
        "container_id": container.get("container_id"),
        "pod_name": container.get("pod"),
        "namespace": container.get("namespace"),
        "zombie_pid": zombie.get("pid"),
        "zombie_ppid": zombie.get("ppid"),
        "zombie_cmdline": zombie.get("name"),
    }
    record.update(extra)
    return record


DEFAULT_MAX_BYTES = 10 * 1024 * 1024
DEFAULT_BACKUPS = 3
# A node with thousands of new zombies logs this many individually per run, then one summary line.
MAX_SIGHTING_LINES = 500


def _exists(name, dir_fd):
    try:
        os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        return True
    except FileNotFoundError:
        return False


def _rotate(name, backups, dir_fd):
    """audit.log -> audit.log.1 -> ... -> audit.log.<backups>; the oldest is dropped. Names are taken in
    the directory opened by the caller: renames move a link itself, never what it points to."""
    if backups <= 0:
        os.unlink(name, dir_fd=dir_fd)
        return
    for index in range(backups - 1, 0, -1):
        older = "%s.%d" % (name, index)
        if _exists(older, dir_fd):
            os.replace(older, "%s.%d" % (name, index + 1), src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    os.replace(name, name + ".1", src_dir_fd=dir_fd, dst_dir_fd=dir_fd)


def _open_log(path, name, dir_fd):
    """The log opened for appending (created 0600): never through a link, never a file with other names."""
    try:
        descriptor = os.open(name, os.O_WRONLY | os.O_APPEND | os.O_CREAT | atomicfile.NOFOLLOW, 0o600,
                             dir_fd=dir_fd)
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise atomicfile.UnsafePath("audit_log_path=%r is a symbolic link: not followed (remove it; the "
                                        "job creates the log itself)" % path)
        raise error
    info = os.fstat(descriptor)
    if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
        os.close(descriptor)
        raise atomicfile.UnsafePath("audit_log_path=%r is not a plain file of its own (%d links): move it away"
                                    % (path, info.st_nlink))
    return descriptor


def append(path, records, min_level="info", max_bytes=DEFAULT_MAX_BYTES, backups=DEFAULT_BACKUPS):
    """Append the records at or above min_level, rotating so the file stays under max_bytes.

    The directory is created 0700 (an existing one must be root's and not writable by group or others:
    atomicfile.secure_directory), the file 0600, and no link is followed. A flock on <name>.lock, a 0600 file
    in that directory (not the directory itself, which anyone who can read it could lock), serialises appenders
    and rotation, waited for LOCK_WAIT seconds at most: an audit line never hangs the run that writes it.
    """
    threshold = LEVELS[min_level]
    lines = [json.dumps(record, sort_keys=True) + "\n" for record in records if LEVELS[record["level"]] >= threshold]
    if not lines:
        return 0
    written = len(lines)
    data = "".join(lines).encode("utf-8")
    if len(data) > max_bytes:
        # One batch larger than the whole bound: keep its newest lines and say how many were dropped.
        def note(dropped):
            return json.dumps(line("warning", "%d audit records of this run dropped: larger than the log's bound of "
                                              "%d bytes" % (dropped, max_bytes)), sort_keys=True) + "\n"
        budget = max_bytes - len(note(len(lines)).encode("utf-8"))   # the longest the note can be
        kept = []
        for text in reversed(lines):
            budget -= len(text.encode("utf-8"))
            if budget < 0:
                break
            kept.append(text)
        data = (note(len(lines) - len(kept)) + "".join(reversed(kept))).encode("utf-8")
        written = len(kept)
    directory, name = os.path.split(os.path.abspath(path))
    atomicfile.secure_directory(directory, "audit_log_path=%r" % path)
    # Every name below is taken in this directory, the one just checked.
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | atomicfile.NOFOLLOW)
    lock_fd = None
    try:
        lock_fd = os.open(name + ".lock", os.O_RDWR | os.O_CREAT | atomicfile.NOFOLLOW, 0o600, dir_fd=dir_fd)
        _lock(lock_fd, path)
        try:
            size = os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_size
        except FileNotFoundError:
            size = 0
        if size and size + len(data) > max_bytes:
            _rotate(name, backups, dir_fd)
        fd = _open_log(path, name, dir_fd)
        try:
            os.write(fd, data)   # one write: lines never interleave with another writer's
        finally:
            os.close(fd)
    finally:
        if lock_fd is not None:
            os.close(lock_fd)
        os.close(dir_fd)
    return written


# How long an audit write waits for another writer (appends take microseconds; rotation a few renames).
LOCK_WAIT = 5.0


def _lock(fd, path):
    def taken():
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            return False
    if not waiter.poll_until(taken, LOCK_WAIT, 0.01):
        raise OSError(errno.EAGAIN, "audit log %s: another writer held its lock for %.0fs" % (path, LOCK_WAIT))


def sighting_records(containers, host_groups, previous, confirm_count, min_level="info", now=None):
    """Audit records for one scan: a line per zombie first seen (info), per zombie still there (debug),
    and per container that was not confirmed before this run and is now (warning).

    previous: the state's {"containers": {...}, "host_groups": {...}} before this run.
    """
    records = []
    skipped = 0
    for section, groups in (("containers", containers), ("host_groups", host_groups)):
        for group in groups:
            key = group["container_id"] if section == "containers" else group["key"]
            before = (previous.get(section) or {}).get(key) or {}
            known = set(before.get("zombies") or {})
            container = group if section == "containers" else None
            for zombie in group["zombies"]:
                new = "%d:%d" % (zombie["pid"], zombie["start_time"]) not in known
                if LEVELS["info" if new else "debug"] < LEVELS[min_level]:
                    continue
                if len(records) >= MAX_SIGHTING_LINES:
                    skipped += 1
                    continue
                where = "container %s" % group.get("container_id", "")[:12] if container else \
                    "host, parent %s[%s]" % (group["parent"]["name"], group["parent"]["pid"])
                records.append(line("info" if new else "debug",
                                    "zombie %s (%s)" % ("sighted" if new else "still present", where),
                                    container, zombie, now, action="sighting", parent_class=zombie["parent_class"],
                                    sightings=group.get("sightings")))
            if container and group.get("confirmed") and not before.get("confirmed"):
                confirmed = [zombie for zombie in group["zombies"] if zombie.get("confirmed")]
                records.append(line("warning", "container confirmed: %d zombies seen in %d or more consecutive runs "
                                               "(%s)" % (len(confirmed), confirm_count, group.get("decision")),
                                    container, (confirmed or group["zombies"])[0], now, action="confirm",
                                    zombie_count=group["zombie_count"], confirmed_zombies=len(confirmed),
                                    pids_pressure=group.get("pids_pressure")))
    if skipped:
        records.append(line("info", "%d more zombie sightings not logged one by one" % skipped, now=now,
                            action="sighting"))
    return records


def outcome_records(outcomes, now=None):
    records = []
    for outcome in outcomes:
        level = _RESULT_LEVEL.get(outcome["result"], "info")
        msg = "remediation %s: %s" % (outcome["result"], outcome.get("reason") or outcome.get("rung"))
        records.append(line(level, msg, outcome, outcome.get("zombie"), now, action="remediate",
                            result=outcome["result"], rung=outcome.get("rung"), runtime=outcome.get("runtime"),
                            container_name=outcome.get("container_name"), zombies_before=outcome["zombies_before"],
                            zombies_after=outcome.get("zombies_after"), timeouts=outcome["timeouts"],
                            stop_seconds=outcome.get("stop_seconds"),
                            rungs=[{key: step.get(key) for key in ("rung", "ok", "seconds", "detail")}
                                   for step in outcome["rungs"]]))
    return records

class AuditLog:
    """Where and how much to log: path, LOG_LEVEL and the size bound."""

    def __init__(self, path, min_level="info", max_bytes=DEFAULT_MAX_BYTES, backups=DEFAULT_BACKUPS):
        self.path = path
        self.min_level = min_level
        self.max_bytes = max_bytes
        self.backups = backups

    def write(self, records):
        if not self.path:
            return 0
        return append(self.path, records, self.min_level, self.max_bytes, self.backups)
