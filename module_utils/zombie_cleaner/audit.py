# -*- coding: utf-8 -*-
# Copyright: zombie-cleaner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The node's audit log: one JSON line per action, with the original design's fields."""

from __future__ import annotations

import json
import os
import time

LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40}
COMPONENT = "zombie-cleaner"

_RESULT_LEVEL = {"cured": "info", "would_remediate": "info", "skipped": "debug", "deferred": "warning",
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


def append(path, records, min_level="info"):
    """Append the records at or above min_level; the directory is created 0700."""
    threshold = LEVELS[min_level]
    kept = [record for record in records if LEVELS[record["level"]] >= threshold]
    if not kept:
        return 0
    os.makedirs(os.path.dirname(os.path.abspath(path)), mode=0o700, exist_ok=True)
    data = "".join(json.dumps(record, sort_keys=True) + "\n" for record in kept)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, data.encode("utf-8"))   # one write: concurrent appenders do not interleave lines
    finally:
        os.close(fd)
    return len(kept)


def append_outcomes(path, outcomes, min_level, now=None):
    records = []
    for outcome in outcomes:
        level = _RESULT_LEVEL.get(outcome["result"], "info")
        msg = "remediation %s: %s" % (outcome["result"], outcome.get("reason") or outcome.get("rung"))
        records.append(line(level, msg, outcome, outcome.get("zombie"), now, action="remediate",
                            result=outcome["result"], rung=outcome.get("rung"), runtime=outcome.get("runtime"),
                            container_name=outcome.get("container_name"), zombies_before=outcome["zombies_before"],
                            zombies_after=outcome.get("zombies_after"), timeouts=outcome["timeouts"],
                            rungs=[{key: step.get(key) for key in ("rung", "ok", "seconds", "detail")}
                                   for step in outcome["rungs"]]))
    return append(path, records, min_level)
