"""The zombie_scan module over fixture trees: arguments, check and diff mode, failures."""

import json
import os
import time

import pytest

import zombie_scan
from helpers.modules import ModuleFail, run_module
from helpers.procfixture import FakeNode

APP = "a" * 64
PROTECTED = "b" * 64


def fixture_node(tmp_path):
    node = FakeNode(tmp_path / "node")
    node.add(1, 0, "init")
    for shim, cid, name, ns in ((100, APP, "shop-web", "shop"), (200, PROTECTED, "kube-proxy", "kube-system")):
        node.add(shim, 1, "containerd-shim", cmdline=["containerd-shim-runc-v2", "-namespace", "k8s.io", "-id", cid])
        node.add(shim + 1, shim, "app", cgroup="/k8s.io/" + cid)
        node.add(shim + 2, shim + 1, "child", state="Z")
        node.containerd_bundle("k8s.io", cid, shim + 1, {
            "io.kubernetes.cri.sandbox-name": name, "io.kubernetes.cri.sandbox-namespace": ns,
            "io.kubernetes.cri.container-name": "main"})
    node.add(300, 1, "cron")
    node.add(301, 300, "mail", state="Z")
    return node


def args_for(node, tmp_path, **extra):
    args = dict(proc_root=str(node.proc), state_path=str(tmp_path / "state" / "state.json"),
                cgroup_root=str(node.cgroup_root), audit_log_path=str(tmp_path / "log" / "audit.log"),
                metrics_textfile_dir=str(tmp_path), **node.runtime_files())
    args.update(extra)
    return args


def runs_apart(monkeypatch, args, count):
    """count runs check_interval (10ms here) apart: confirmation takes time as well as runs."""
    args = dict(args, check_interval="10ms")
    results = []
    for index in range(count):
        time.sleep(0.01 if index else 0)
        results.append(run_module(monkeypatch, zombie_scan, args))
    return results


def test_confirmation_on_the_third_run_and_whitelist(monkeypatch, tmp_path):
    node = fixture_node(tmp_path)
    results = runs_apart(monkeypatch, args_for(node, tmp_path), 3)
    assert [r["changed"] for r in results] == [True, True, True]
    assert [r["candidates"] for r in results] == [[], [], [APP]]
    last = {c["container_id"]: c for c in results[-1]["containers"]}
    assert last[APP]["confirmed"] and last[APP]["candidate"] and last[APP]["sightings"] == 3
    assert last[PROTECTED]["confirmed"] and last[PROTECTED]["protected"] and not last[PROTECTED]["candidate"]
    assert last[PROTECTED]["protected_by"] == {"pattern": "^kube-system-.*", "subject": "kube-system-kube-proxy"}
    assert results[-1]["summary"]["host_zombies"] == 1
    assert results[-1]["report"][0].startswith("3 zombies: 2 in 2 containers (2 confirmed, 1 protected, 1 to remediate)")


def test_check_mode_writes_nothing_and_diff_shows_the_change(monkeypatch, tmp_path):
    node = fixture_node(tmp_path)
    args = args_for(node, tmp_path)
    run_module(monkeypatch, zombie_scan, args)
    before = open(args["state_path"], "rb").read()
    result = run_module(monkeypatch, zombie_scan, dict(args, _ansible_check_mode=True, _ansible_diff=True))
    assert open(args["state_path"], "rb").read() == before
    assert result["changed"] is True
    assert result["diff"]["before"]["containers"][APP]["count"] == 1
    assert result["diff"]["after"]["containers"][APP]["count"] == 2


def test_check_mode_on_a_new_node_creates_no_directory(monkeypatch, tmp_path):
    node = fixture_node(tmp_path)
    args = args_for(node, tmp_path)
    run_module(monkeypatch, zombie_scan, dict(args, _ansible_check_mode=True))
    assert not os.path.exists(os.path.dirname(args["state_path"]))


def test_nothing_new_changes_nothing(monkeypatch, tmp_path):
    node = FakeNode(tmp_path / "node")
    node.add(1, 0, "init")
    args = args_for(node, tmp_path)
    assert run_module(monkeypatch, zombie_scan, args)["changed"] is False
    assert run_module(monkeypatch, zombie_scan, args)["changed"] is False


@pytest.mark.parametrize("extra, message", [
    ({"confirm_count": 0}, "confirm_count=0 is invalid: expected a whole number of at least 1"),
    ({"whitelist_patterns": ["^ok-.*", "(unclosed"]},
     "whitelist_patterns='(unclosed' is invalid: not a valid regular expression (missing ), unterminated subpattern at position 0)"),
    ({"process_timeout": "ten seconds"}, "process_timeout='ten seconds' is invalid: expected a duration such as 30s, 5m or 1h"),
    ({"check_interval": "0s"}, "check_interval='0s' is invalid: must be longer than zero"),
])
def test_bad_input_fails_before_anything_is_written(monkeypatch, tmp_path, extra, message):
    node = fixture_node(tmp_path)
    args = args_for(node, tmp_path, **extra)
    with pytest.raises(ModuleFail) as failed:
        run_module(monkeypatch, zombie_scan, args)
    assert failed.value.result["msg"] == message
    assert not os.path.exists(os.path.dirname(args["state_path"]))


def test_unwritable_state_directory_names_the_parameter(monkeypatch, tmp_path):
    node = fixture_node(tmp_path)
    (tmp_path / "blocker").write_text("a file, not a directory")
    args = args_for(node, tmp_path, state_path=str(tmp_path / "blocker" / "state.json"))
    with pytest.raises(ModuleFail) as failed:
        run_module(monkeypatch, zombie_scan, args)
    assert failed.value.result["msg"].startswith("state_path=%r: cannot create directory" % args["state_path"])


def test_corrupt_state_is_a_warning_not_a_failure(monkeypatch, tmp_path):
    node = fixture_node(tmp_path)
    args = args_for(node, tmp_path)
    os.makedirs(os.path.dirname(args["state_path"]))
    with open(args["state_path"], "w") as handle:
        handle.write("{half a file")
    result = run_module(monkeypatch, zombie_scan, args)
    assert result["summary"]["containers_with_zombies"] == 2
    assert any("kept it as" in warning for warning in result["node_warnings"])
    assert [n for n in os.listdir(os.path.dirname(args["state_path"])) if ".corrupt-" in n]


def test_pids_pressure_ranks_containers_and_runs_leave_metrics_and_audit(monkeypatch, tmp_path):
    node = fixture_node(tmp_path)
    node.pids_cgroup("/k8s.io/" + APP, 10, 100)
    node.pids_cgroup("/k8s.io/" + PROTECTED, 63, 64)
    args = args_for(node, tmp_path)
    results = runs_apart(monkeypatch, args, 3)
    ranked = results[-1]["containers"]
    assert [c["container_id"] for c in ranked] == [PROTECTED, APP]       # closest to failing forks first
    assert (ranked[0]["pids_current"], ranked[0]["pids_max"], ranked[0]["pids_pressure"]) == (63, 64, 0.9844)
    assert "pids 63/64 (98% of the limit)" in results[-1]["report"][1]
    assert results[-1]["summary"]["max_pids_pressure"] == 0.9844

    prom = tmp_path / "zombie_cleaner.prom"
    assert results[-1]["metrics_path"] == str(prom)
    text = prom.read_text()
    assert "zombie_cleaner_check_duration_seconds_count 3\n" in text
    assert "zombie_cleaner_zombie_processes_found 3\n" in text
    assert 'zombie_cleaner_container_pids_max{container_id="%s",namespace="kube-system",pod="kube-proxy",' \
           'container="main",runtime="containerd"} 64\n' % PROTECTED in text

    lines = [json.loads(line) for line in (tmp_path / "log" / "audit.log").read_text().splitlines()]
    sighted = [line for line in lines if line["action"] == "sighting"]
    assert len(sighted) == 3                              # each zombie once, when first seen (level info)
    confirmed = [line["container_id"] for line in lines if line["action"] == "confirm"]
    assert sorted(confirmed) == sorted([APP, PROTECTED])

    # A container gone from the node drops out of the metrics.
    for pid in (101, 102):
        (node.proc / str(pid) / "stat").unlink()
    run_module(monkeypatch, zombie_scan, args)
    assert APP not in prom.read_text() and PROTECTED in prom.read_text()


def test_check_mode_writes_no_metrics_and_no_audit(monkeypatch, tmp_path):
    node = fixture_node(tmp_path)
    result = run_module(monkeypatch, zombie_scan, dict(args_for(node, tmp_path), _ansible_check_mode=True))
    assert result["metrics_path"] is None
    assert not (tmp_path / "zombie_cleaner.prom").exists() and not (tmp_path / "log").exists()


def test_bad_audit_size_fails_before_anything_is_written(monkeypatch, tmp_path):
    node = fixture_node(tmp_path)
    with pytest.raises(ModuleFail) as failure:
        run_module(monkeypatch, zombie_scan, args_for(node, tmp_path, audit_log_max_size="lots"))
    assert failure.value.result["parameter"] == "audit_log_max_size"
    assert not (tmp_path / "state").exists()


@pytest.mark.parametrize("gap, expected", [
    (300, None), (101, None), (899, None),                      # near check_interval (300 s): quiet
    (901, "confirmation takes about 2703s instead of 900s"),    # far too late
    (99, "confirmed after about 297s instead of 900s"),         # far too soon
])
def test_schedule_gap_far_from_check_interval_warns_either_way(tmp_path, gap, expected):
    from ansible.module_utils.zombie_cleaner.observe import scan
    node = fixture_node(tmp_path)
    options = scan.ScanOptions(proc_root=str(node.proc), state_path=str(tmp_path / "state.json"),
                               cgroup_root=str(node.cgroup_root), check_interval="5m",
                               runtime_files=node.runtime_files())
    first = scan.run_scan(options, now=1000.0)
    assert first["previous_run_age_seconds"] is None
    second = scan.run_scan(options, now=1000.0 + gap)
    assert second["previous_run_age_seconds"] == gap
    found = [text for text in second["warnings"] if "since the previous run" in text]
    if expected is None:
        assert found == []
    else:
        assert len(found) == 1 and expected in found[0], found


def test_result_names_the_node_as_it_names_itself(monkeypatch, tmp_path):
    import socket
    node = fixture_node(tmp_path)
    assert run_module(monkeypatch, zombie_scan, args_for(node, tmp_path))["node"] == socket.gethostname()


@pytest.mark.parametrize("reap_host_zombies", [False, True])
def test_to_cure_lists_confirmed_unprotected_work_and_never_pid_1(monkeypatch, tmp_path, reap_host_zombies):
    node = fixture_node(tmp_path)
    node.add(400, 1, "orphan", state="Z")          # a zombie of the host's PID 1: never work to cure
    args = args_for(node, tmp_path, reap_host_zombies=reap_host_zombies)
    first, _, last = runs_apart(monkeypatch, args, 3)
    assert first["to_cure"] == {"containers": [], "host_groups": []}     # nothing confirmed yet
    assert [c["container_id"] for c in last["to_cure"]["containers"]] == [APP]   # the protected one is left out
    assert {g["parent"]["pid"] for g in last["host_groups"] if g["confirmed"]} == {1, 300}
    assert [g["parent"]["pid"] for g in last["to_cure"]["host_groups"]] == ([300] if reap_host_zombies else [])
