# -*- coding: utf-8 -*-
# Copyright: zombie-cleaner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The node's audit log: JSON lines per sighting and per action, with the original design's fields."""

from __future__ import annotations

import fcntl
import json
import os
import time

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


def _rotate(path, backups):
    """audit.log -> audit.log.1 -> ... -> audit.log.<backups>; the oldest is dropped."""
    if backups <= 0:
        os.unlink(path)
        return
    for index in range(backups - 1, 0, -1):
        older = "%s.%d" % (path, index)
        if os.path.exists(older):
            os.replace(older, "%s.%d" % (path, index + 1))
    os.replace(path, path + ".1")


def append(path, records, min_level="info", max_bytes=DEFAULT_MAX_BYTES, backups=DEFAULT_BACKUPS):
    """Append the records at or above min_level, rotating so the file stays under max_bytes.

    The directory is created 0700, the file 0600. A flock on the directory
    serialises appenders and rotation (rotation renames the file itself).
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
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, mode=0o700, exist_ok=True)
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(dir_fd, fcntl.LOCK_EX)
        try:
            size = os.stat(path).st_size
        except FileNotFoundError:
            size = 0
        if size and size + len(data) > max_bytes:
            _rotate(path, backups)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, data)   # one write: lines never interleave with another writer's
        finally:
            os.close(fd)
    finally:
        os.close(dir_fd)
    return written


def sighting_records(containers, host_groups, previous, confirm_count, min_level="info", now=None):
    """Audit records for one scan: a line per zombie first seen (info), per zombie still there (debug),
    and per container that just reached confirmation (warning).

    previous: the state's {"containers": {...}, "host_groups": {...}} before this run.
    """
    records = []
    skipped = 0
    for section, groups in (("containers", containers), ("host_groups", host_groups)):
        for group in groups:
            key = group["container_id"] if section == "containers" else group["key"]
            known = set(((previous.get(section) or {}).get(key) or {}).get("zombies") or {})
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
            if container and group.get("sightings") == confirm_count:
                records.append(line("warning", "container confirmed: zombies in %d consecutive runs (%s)" % (
                    confirm_count, group.get("decision")), container, group["zombies"][0], now, action="confirm",
                    zombie_count=group["zombie_count"], pids_pressure=group.get("pids_pressure")))
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
