"""Sighting state: counting, reset, PID reuse, reboot, corrupt files, locking, atomic writes."""

import json
import multiprocessing
import os
import stat

import pytest

from ansible.module_utils.zombie_cleaner.observe import procfs, scan
from ansible.module_utils.zombie_cleaner.record import metrics, state
from helpers.zombies import ZombieParent

BOOT = "boot-a"


def group(*zombies):
    return {"zombies": [{"pid": pid, "start_time": start} for pid, start in zombies]}


def run(previous, groups, now, confirm=3, check_interval=300):
    return state.update_sightings(previous, groups, now, confirm, check_interval)


def test_same_zombies_in_consecutive_runs_confirm_on_the_third():
    entries = {}
    for now in (100, 400, 700):
        entries = run(entries, {"c1": group((10, 5), (11, 5))}, now)
    assert entries["c1"]["count"] == 3 and entries["c1"]["confirmed"] is True
    assert entries["c1"]["since"] == 100
    assert entries["c1"]["zombies"] == {"10:5": 100, "11:5": 100}


def test_new_zombies_are_added_while_an_old_one_persists():
    entries = run({}, {"c1": group((10, 5))}, 100)
    entries = run(entries, {"c1": group((10, 5), (12, 9))}, 200)
    assert entries["c1"]["count"] == 2
    assert entries["c1"]["zombies"] == {"10:5": 100, "12:9": 200}


def test_a_run_without_zombies_resets_and_prunes():
    entries = run({}, {"c1": group((10, 5)), "c2": group((20, 5))}, 100)
    entries = run(entries, {"c2": group((20, 5))}, 200)
    assert sorted(entries) == ["c2"]
    entries = run(entries, {"c1": group((10, 5))}, 300)
    assert entries["c1"]["count"] == 1


def test_slow_reaper_with_fresh_zombies_every_run_is_not_punished():
    entries = {}
    for now, pid in ((100, 10), (200, 11), (300, 12), (400, 13)):
        entries = run(entries, {"c1": group((pid, now))}, now)
    assert entries["c1"]["count"] == 1 and entries["c1"]["confirmed"] is False


def test_reused_pid_is_a_new_zombie():
    entries = run({}, {"c1": group((10, 5))}, 100)
    entries = run(entries, {"c1": group((10, 6))}, 200)  # same pid, new start time
    assert entries["c1"]["count"] == 1


def test_confirm_count_one_confirms_at_first_sight():
    assert run({}, {"c1": group((10, 5))}, 100, confirm=1)["c1"]["confirmed"] is True


def saved(path, containers, boot=BOOT):
    data = state.empty_state(boot)
    data["containers"] = containers
    data["last_run"] = 50
    state.save(str(path), data)


def test_save_is_0600_and_round_trips(tmp_path):
    path = tmp_path / "state.json"
    entries = run({}, {"c1": group((10, 5))}, 100)
    saved(path, entries)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    loaded, warnings = state.load(str(path), BOOT)
    assert warnings == [] and loaded["containers"] == entries and loaded["last_run"] == 50
    assert [name for name in os.listdir(tmp_path) if name.startswith(".state.")] == []


def test_reboot_starts_sightings_over_but_keeps_counters(tmp_path):
    path = tmp_path / "state.json"
    data = state.empty_state("old-boot")
    data["containers"] = run({}, {"c1": group((10, 5))}, 100)
    data["counters"] = {"containers_cleaned_total": 4}
    state.save(str(path), data)
    loaded, warnings = state.load(str(path), BOOT)
    assert loaded["containers"] == {} and loaded["counters"] == {"containers_cleaned_total": 4}
    assert "rebooted" in warnings[0]


@pytest.mark.parametrize("content", [b"{not json", b"[]", b'{"containers": {}}', b'{"version": "1"}', b"\xff\xfe",
                                     b'{"version": 99, "containers": {}, "host_groups": {}}'])
def test_corrupt_file_is_kept_aside_and_the_run_starts_fresh(tmp_path, content):
    path = tmp_path / "state.json"
    path.write_bytes(content)
    loaded, warnings = state.load(str(path), BOOT, now=1234)
    assert loaded["containers"] == {}
    assert (tmp_path / "state.json.corrupt-1234").read_bytes() == content
    assert not path.exists()
    assert "kept it as" in warnings[0]


def test_corrupt_file_in_check_mode_is_left_alone(tmp_path):
    path = tmp_path / "state.json"
    path.write_bytes(b"{broken")
    loaded, warnings = state.load(str(path), BOOT, move_corrupt=False)
    assert path.read_bytes() == b"{broken" and loaded["containers"] == {}
    assert "would keep it aside" in warnings[0]


def test_unreadable_state_path_is_a_clear_error(tmp_path):
    (tmp_path / "state.json").mkdir()
    with pytest.raises(state.StateError, match="is a directory"):
        state.load(str(tmp_path / "state.json"), BOOT)


def _hold_lock(path, ready, release):
    with state.Lock(path, 1):
        ready.set()
        release.wait(10)


def test_lock_held_by_another_run(tmp_path):
    path = str(tmp_path / "state.json")
    ready, release = multiprocessing.Event(), multiprocessing.Event()
    holder = multiprocessing.Process(target=_hold_lock, args=(path, ready, release))
    holder.start()
    try:
        assert ready.wait(10)
        with pytest.raises(state.LockBusy, match=r"pid %d" % holder.pid):
            with state.Lock(path, 0.3):
                pass
    finally:
        release.set()
        holder.join(10)
    with state.Lock(path, 1):   # free again once the other run ends
        pass
    assert stat.S_IMODE(os.stat(path + ".lock").st_mode) == 0o600


def test_failed_write_leaves_the_old_file_and_no_temp(tmp_path, monkeypatch):
    path = tmp_path / "state.json"
    saved(path, {})
    before = path.read_bytes()

    def boom(*args, **kwargs):
        raise OSError("disk full")
    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(OSError):
        saved(path, run({}, {"c1": group((1, 1))}, 1))
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["state.json"]


def test_prepare_directory_refuses_unwritable_places(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(state.StateError, match="cannot create directory"):
        state.prepare_directory(str(blocker / "sub" / "state.json"))
    state.prepare_directory(str(tmp_path / "new" / "state.json"))
    assert stat.S_IMODE(os.stat(tmp_path / "new").st_mode) == 0o700


# Sections of the wrong type: valid JSON that once crashed every run and was never moved aside.

def full_state():
    data = state.empty_state(BOOT)
    entry = {"count": 1, "since": 100.0, "last_seen": 100.0, "confirmed": False, "zombies": {"10:5": 100.0}}
    data.update(
        containers={"c1": entry}, host_groups={"host:1:1": dict(entry, zombies={"20:5": 100.0})},
        counters={"containers_cleaned_total": 4}, last_run=100.0, histogram=metrics.observe(None, 0.01),
        last_scan={"time": 100.0, "zombies": 2, "containers": [{"container_id": "c1", "zombies": 1}]},
        history=[{"time": 100.0, "zombies": 2}], remediations=[{"time": 90.0, "label": "shop/web-1"}])
    return data


@pytest.mark.parametrize("section, value", [
    ("counters", [1]), ("counters", {"containers_cleaned_total": "4"}), ("history", {}), ("history", [3]),
    ("remediations", "x"), ("histogram", []), ("histogram", {"bounds": [1.0], "counts": [1, 2], "sum": 0, "count": 1}),
    ("last_scan", 3), ("last_scan", {"zombies": "two"}), ("last_scan", {"containers": [{"zombies": [1]}]}),
    ("last_run", "yesterday"), ("containers", []), ("host_groups", "x"),
])
def test_a_wrongly_typed_section_is_dropped_and_the_rest_kept(tmp_path, section, value):
    path = tmp_path / "state.json"
    data = full_state()
    data[section] = value
    path.write_text(json.dumps(data))
    original = path.read_bytes()
    loaded, warnings = state.load(str(path), BOOT, now=1234)
    expected = full_state()
    if section in state.empty_state(BOOT):
        expected[section] = state.empty_state(BOOT)[section]
    else:
        del expected[section]
    assert loaded == expected
    assert warnings == ["state file %s: dropped section %r (expected %s, got %s %s); the rest is kept; the file "
                        "as it was is kept as %s.corrupt-1234" % (path, section, state.SECTION_CHECKS[section][1]
                                                                   if section in state.SECTION_CHECKS else
                                                                   "a mapping of sighting entries",
                                                                   type(value).__name__, json.dumps(value)[:40], path)]
    assert (tmp_path / "state.json.corrupt-1234").read_bytes() == original


@pytest.mark.parametrize("entry, problem", [
    ({"count": 2, "zombies": [["10:5", 100]]}, "zombies is not a mapping of pid:start to first-seen times"),
    ({"count": "2", "zombies": {}}, "count is not a whole number"),
    ({"count": 2, "zombies": {"10:5": "then"}}, "zombies is not a mapping of pid:start to first-seen times"),
    ({"count": 2, "zombies": {"10:5": 100}, "runs": {"10:5": -1}}, "runs is not a mapping of pid:start to run counts"),
    ({"count": 2, "zombies": {}, "since": "then"}, "since or last_seen is not a time"),
    ([1, 2], "expected a mapping, got list"),
])
def test_a_bad_sighting_entry_is_dropped_and_the_other_entries_and_sections_kept(tmp_path, entry, problem):
    path = tmp_path / "state.json"
    data = full_state()
    data["containers"]["bad"] = entry
    path.write_text(json.dumps(data))
    loaded, warnings = state.load(str(path), BOOT, move_corrupt=False)
    assert loaded == full_state()
    assert warnings == ["state file %s: dropped containers entry 'bad' (%s); the rest is kept; a real run keeps a "
                        "copy of the file as it was" % (path, problem)]
    assert json.loads(path.read_text()) == data            # check mode: left as it was


def test_a_run_over_a_wrongly_typed_state_completes_and_leaves_a_good_one(tmp_path):
    # A real scan of this machine, with a real zombie, over the state file that crashed every run.
    path = tmp_path / "state.json"
    path.write_text(json.dumps(dict(state.empty_state("any"), counters=[1], history={}, remediations="x",
                                    histogram=[], last_scan=3, last_run="yesterday")))
    with ZombieParent(1):
        options = scan.ScanOptions(state_path=str(path), metrics_textfile_dir=str(tmp_path))
        result = scan.run_scan(options)
        assert result["zombie_count"] >= 1
        assert "dropped section 'counters' (expected a mapping of counter names to numbers, got list [1])" \
               in "\n".join(result["warnings"])
        assert "zombie_cleaner_check_duration_seconds_count 1\n" in (tmp_path / "zombie_cleaner.prom").read_text()
        again = scan.run_scan(options)
    assert [text for text in again["warnings"] if "state file" in text] == []
    reloaded, warnings = state.load(str(path), procfs.read_boot_id("/proc"))
    assert warnings == [] and len(reloaded["history"]) == 2 and reloaded["histogram"]["count"] == 2


def test_thousands_of_bad_entries_make_a_warning_one_can_read(tmp_path):
    path = tmp_path / "state.json"
    data = full_state()
    data["containers"].update({"bad%04d" % n: [] for n in range(2000)})
    path.write_text(json.dumps(data))
    loaded, warnings = state.load(str(path), BOOT, now=1234)
    assert loaded == full_state() and len(warnings) == 1 and len(warnings[0]) < 2000
    assert "containers entry 'bad0009' (expected a mapping, got list); and 1990 more; the rest is kept" in warnings[0]
