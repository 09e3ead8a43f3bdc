"""The audit log: design fields, LOG_LEVEL, rotation under a size bound."""

import json
import os

import pytest

from ansible.module_utils.zombie_cleaner import config
from ansible.module_utils.zombie_cleaner.record import audit

FIELDS = ("time", "level", "msg", "component", "container_id", "pod_name", "namespace", "zombie_pid", "zombie_ppid",
          "zombie_cmdline")


def container(sightings, zombies, confirmed=()):
    return {"container_id": "a" * 64, "namespace": "shop", "pod": "web-1", "container_name": "app",
            "sightings": sightings, "decision": "confirmed", "zombie_count": len(zombies), "pids_pressure": 0.5,
            "confirmed": bool(confirmed),
            "zombies": [{"pid": pid, "ppid": 10, "name": "sh", "start_time": pid, "parent_class": "application",
                         "confirmed": pid in confirmed} for pid in zombies]}


def test_sightings_new_at_info_persisting_at_debug_confirmation_at_warning():
    previous = {"containers": {"a" * 64: {"zombies": {"11:11": 1.0}}}}
    records = audit.sighting_records([container(3, [11, 12], confirmed=[11])], [], previous, 3, "debug", now=0)
    by_pid = {record["zombie_pid"]: record for record in records if record["action"] == "sighting"}
    assert by_pid[12]["level"] == "info" and "sighted" in by_pid[12]["msg"]
    assert by_pid[11]["level"] == "debug" and "still present" in by_pid[11]["msg"]
    confirm = [record for record in records if record["action"] == "confirm"]
    assert len(confirm) == 1 and confirm[0]["level"] == "warning"
    for record in records:
        assert set(FIELDS) <= set(record)
    assert by_pid[12]["pod_name"] == "web-1" and by_pid[12]["namespace"] == "shop"
    assert by_pid[12]["zombie_ppid"] == 10 and by_pid[12]["zombie_cmdline"] == "sh"
    assert by_pid[12]["time"] == "1970-01-01T00:00:00Z" and by_pid[12]["component"] == "zombie-cleaner"
    # At info, the persisting zombie is not even built.
    at_info = audit.sighting_records([container(3, [11, 12])], [], previous, 3)
    assert {r["zombie_pid"] for r in at_info if r["action"] == "sighting"} == {12}


def test_host_zombies_and_the_per_run_cap():
    host = {"key": "host:1:0", "parent": {"name": "init", "pid": 1}, "sightings": 1,
            "zombies": [{"pid": 1000 + n, "ppid": 1, "name": "x", "start_time": n, "parent_class": "host"}
                        for n in range(audit.MAX_SIGHTING_LINES + 7)]}
    records = audit.sighting_records([], [host], {}, 3)
    assert len(records) == audit.MAX_SIGHTING_LINES + 1
    assert records[0]["container_id"] is None and "host, parent init[1]" in records[0]["msg"]
    assert records[-1]["msg"] == "7 more zombie sightings not logged one by one"


def test_level_filter_and_file_mode(tmp_path):
    path = tmp_path / "log" / "audit.log"
    log = audit.AuditLog(str(path), "warning")
    written = log.write([audit.line("info", "a"), audit.line("warning", "b"), audit.line("error", "c")])
    assert written == 2
    assert [json.loads(text)["msg"] for text in path.read_text().splitlines()] == ["b", "c"]
    assert os.stat(path).st_mode & 0o777 == 0o600 and os.stat(path.parent).st_mode & 0o777 == 0o700


def test_rotation_keeps_every_file_under_the_bound(tmp_path):
    path = tmp_path / "audit.log"
    log = audit.AuditLog(str(path), "info", max_bytes=4096, backups=2)
    for run in range(60):
        log.write([audit.line("info", "run %d zombie %d" % (run, n)) for n in range(3)])
    files = sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock"))   # the writers' lock
    assert files == ["audit.log", "audit.log.1", "audit.log.2"]
    for name in files:
        assert (tmp_path / name).stat().st_size <= 4096
        for text in (tmp_path / name).read_text().splitlines():
            json.loads(text)
    assert "run 59 zombie 2" in path.read_text()        # the newest lines are in the live file


def test_a_batch_larger_than_the_bound_keeps_its_newest_lines(tmp_path):
    path = tmp_path / "audit.log"
    audit.AuditLog(str(path), "info", max_bytes=2048, backups=0).write(
        [audit.line("info", "zombie %d" % n) for n in range(100)])
    lines = [json.loads(text) for text in path.read_text().splitlines()]
    assert path.stat().st_size <= 2048
    assert "audit records of this run dropped" in lines[0]["msg"] and lines[-1]["msg"] == "zombie 99"


@pytest.mark.parametrize("value, expected", [("10M", 10485760), ("512K", 524288), ("1G", 1073741824),
                                             (4096, 4096), ("2MiB", 2097152)])
def test_sizes(value, expected):
    assert config.parse_size("audit_log_max_size", value) == expected


@pytest.mark.parametrize("value", ["", "ten", "0", "-1M", True])
def test_bad_sizes_name_the_parameter(value):
    with pytest.raises(config.ConfigError) as error:
        config.parse_size("audit_log_max_size", value)
    assert str(error.value).startswith("audit_log_max_size=")


def test_a_lock_held_by_someone_else_bounds_the_write_instead_of_hanging_it(tmp_path, monkeypatch):
    """The directory is readable by others (root's 0755 /var/log): locking it would let anyone hang every
    run. The lock is a 0600 file of its own, and its wait is bounded."""
    import fcntl
    import os
    import time
    directory = tmp_path / "log"
    directory.mkdir(mode=0o755)
    path = str(directory / "audit.log")
    audit.append(path, [audit.line("info", "first")])
    assert oct(os.stat(path + ".lock").st_mode & 0o777) == "0o600"
    reader = os.open(str(directory), os.O_RDONLY)           # what any local user can open
    fcntl.flock(reader, fcntl.LOCK_EX)                      # no longer the writers' lock
    audit.append(path, [audit.line("info", "second")])
    os.close(reader)
    monkeypatch.setattr(audit, "LOCK_WAIT", 0.2)
    with open(path + ".lock") as holder:
        fcntl.flock(holder, fcntl.LOCK_EX)                  # a writer that hangs holding it
        started = time.monotonic()
        with pytest.raises(OSError, match="another writer held its lock"):
            audit.append(path, [audit.line("info", "third")])
        assert time.monotonic() - started < 5
    assert [json.loads(line)["msg"] for line in open(path)] == ["first", "second"]
