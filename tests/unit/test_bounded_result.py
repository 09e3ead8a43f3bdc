"""A result of bounded size (issue 17): the modules' results grow with containers and parent groups, never with
zombies, and the remediation still acts on exactly the confirmed zombies, which the node's own state names.

The bound is a size, never a time: 20,000 zombies in one container, or under one host parent, on a fixture
/proc tree."""

import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest

import zombie_remediate
import zombie_scan
from ansible.module_utils.zombie_cleaner.observe import records, scan
from ansible.module_utils.zombie_cleaner.record import state
from helpers.modules import run_module
from helpers.procfixture import FakeNode

APP = "a" * 64
ZOMBIES = 20000
BOUND = 64 * 1024
FIRST = 1000


def node_with_zombies(root, where):
    """A node whose 20,000 zombies are held by a container's init or by one host process."""
    node = FakeNode(root / where)
    node.add(1, 0, "init")
    node.add(100, 1, "containerd-shim", cmdline=["containerd-shim-runc-v2", "-namespace", "k8s.io", "-id", APP])
    node.add(101, 100, "app", cgroup="/k8s.io/" + APP)
    node.containerd_bundle("k8s.io", APP, 101, {
        "io.kubernetes.cri.sandbox-name": "web-1", "io.kubernetes.cri.sandbox-namespace": "shop",
        "io.kubernetes.cri.container-name": "main"})
    node.add(500, 1, "leaky")
    node.add_zombies(101 if where == "container" else 500, range(FIRST, FIRST + ZOMBIES))
    return node


@pytest.fixture(scope="module")
def nodes():
    """Both nodes, made once and only read by the tests; in memory (/dev/shm) where there is one, as 40,000
    small files on a busy disk take long to make and to remove."""
    shm = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
    root = Path(tempfile.mkdtemp(prefix="zombie-cleaner-bounded-", dir=shm))
    try:
        yield {where: node_with_zombies(root, where) for where in ("container", "host")}
    finally:
        shutil.rmtree(root)


def args_for(node, tmp_path, **extra):
    args = dict(proc_root=str(node.proc), state_path=str(tmp_path / "state" / "state.json"),
                cgroup_root=str(node.cgroup_root), audit_log_path=str(tmp_path / "log" / "audit.log"),
                metrics_textfile_dir="", confirm_count=1, reap_host_zombies=True, **node.runtime_files())
    return dict(args, **extra)


def size(result):
    return len(json.dumps(result).encode("utf-8"))


def remediate_args(scan_args, scanned, **extra):
    keep = ("proc_root", "state_path", "audit_log_path", "metrics_textfile_dir", "reap_host_zombies", "containerd_state_dir",
            "docker_data_dir", "crio_storage_dir", "podman_storage_dir", "pod_log_dir")
    return dict({key: scan_args[key] for key in keep}, containers=scanned["to_cure"]["containers"],
                host_groups=scanned["to_cure"]["host_groups"], dry_run=True, **extra)


@pytest.mark.parametrize("where", ["container", "host"])
def test_results_at_20000_zombies_stay_under_64_kib_and_the_cure_covers_every_confirmed_zombie(
        monkeypatch, tmp_path, nodes, where):
    node = nodes[where]
    args = args_for(node, tmp_path)
    checked = run_module(monkeypatch, zombie_scan, dict(args, _ansible_check_mode=True, _ansible_diff=True))
    scanned = run_module(monkeypatch, zombie_scan, args)
    assert scanned["zombie_count"] == ZOMBIES
    for result in (checked, scanned):
        assert size(result) < BOUND, size(result)
    group = scanned["containers"][0] if where == "container" else next(
        item for item in scanned["host_groups"] if item["parent"]["pid"] == 500)
    assert group["zombie_count"] == ZOMBIES and group["zombies_omitted"] == ZOMBIES - records.SAMPLE_SIZE
    assert [zombie["pid"] for zombie in group["zombies"]] == list(range(FIRST, FIRST + records.SAMPLE_SIZE))
    (cure,) = scanned["to_cure"]["containers" if where == "container" else "host_groups"]
    assert cure["confirmed_zombies"] == ZOMBIES and len(cure["zombies"]) == records.SAMPLE_SIZE

    # The remediation re-reads the rest from the node's state: every confirmed zombie, and a bounded result.
    for check_mode in (False, True):
        cured = run_module(monkeypatch, zombie_remediate,
                           dict(remediate_args(args, scanned), _ansible_check_mode=check_mode))
        (outcome,) = cured["outcomes"]
        assert outcome["zombies_before"] == ZOMBIES, outcome
        assert size(cured) < BOUND, size(cured)
        assert len(json.dumps(cured["report"])) < BOUND


def test_a_sample_is_extended_from_the_state_in_check_mode_too(monkeypatch, tmp_path, nodes):
    """A check-mode scan writes nothing: its remediation finds the zombies in the state of the run before."""
    node = nodes["host"]
    args = args_for(node, tmp_path, confirm_count=2, check_interval="1ms")
    run_module(monkeypatch, zombie_scan, args)
    checked = run_module(monkeypatch, zombie_scan, dict(args, _ansible_check_mode=True))
    (cure,) = checked["to_cure"]["host_groups"]
    assert cure["confirmed_zombies"] == ZOMBIES
    cured = run_module(monkeypatch, zombie_remediate, dict(remediate_args(args, checked), _ansible_check_mode=True))
    assert cured["outcomes"][0]["zombies_before"] == ZOMBIES


def test_what_the_state_names_up_to_the_newest_confirmed_sighting_is_exactly_the_confirmed_set():
    """The invariant the remediation relies on (state.first_seen_until), run after run: zombies come, some go,
    groups restart."""
    boot, current = "b", state.empty_state("b")
    options = scan.ScanOptions(confirm_count=3, check_interval="10s")
    alive = set()
    for run in range(12):
        alive |= {run * 10 + n for n in range(run % 4)}          # new zombies most runs
        alive -= {pid for pid in alive if pid % 7 == run % 7}      # and some reaped
        group = records.HostGroup(key="host:9:1", parent={"pid": 9, "name": "p", "start_time": 1}, zombies=[
            {"pid": pid, "ppid": 9, "name": "z", "start_time": pid, "parent_class": "host"} for pid in sorted(alive)])
        seen = scan.Observation(boot, {}, {group.key: group} if alive else {}, len(alive), 10, {"pressure": None}, [])
        current = scan.evaluate(seen, current, options, 1000.0 + 10 * run).state
        for entry in current["host_groups"].values():
            if entry["confirmed_zombies"]:
                until = max(entry["zombies"][key] for key in entry["confirmed_zombies"])
                assert sorted(state.first_seen_until(entry, until)) == sorted(entry["confirmed_zombies"]), run


def test_a_record_that_lists_all_its_zombies_is_acted_on_as_it_is_and_unconfirmed_ones_never():
    from ansible.module_utils.zombie_cleaner.cure import remediate
    record = {"container_id": APP, "zombies": [{"pid": 5, "start_time": 5}, {"pid": 6, "start_time": 6}]}
    assert remediate.with_confirmed_zombies(record, None, "/nonexistent") is record
    marked = dict(record, zombies=[{"pid": 5, "start_time": 5, "confirmed": True},
                                   {"pid": 6, "start_time": 6, "confirmed": False}])
    assert [z["pid"] for z in remediate.with_confirmed_zombies(marked, None, "/nonexistent")["zombies"]] == [5]
