"""Which containers may be acted on, and with which rungs; re-verification against /proc."""

import json

import pytest

from ansible.module_utils.zombie_cleaner.cure import remediate
from ansible.module_utils.zombie_cleaner.record import audit
from helpers.procfixture import FakeNode

SHIM_ARGV = ["containerd-shim-runc-v2", "-namespace", "k8s.io", "-id", "c1"]
OPTIONS = remediate.RemediationOptions()
ALLOW_SHIM = remediate.RemediationOptions(allow_shim_kill_for_runtime_faults=True)
NO_REAP = remediate.RemediationOptions(reap_in_place=False)
POD_SHIM = remediate.RemediationOptions(allow_pod_shim_kill=True, allow_shim_kill_for_runtime_faults=True)


def record(**overrides):
    base = {"container_id": "c1", "confirmed": True, "protected": False, "parent_classes": ["application"],
            "id_source": "bundle",
            "shim": {"pid": 100, "start_time": 10, "binary": "containerd-shim-runc-v2", "id": "c1"},
            "init": {"pid": 110, "start_time": 11, "name": "app"},
            "zombies": [{"pid": 111, "ppid": 110, "start_time": 12, "name": "w"}]}
    base.update(overrides)
    return base


@pytest.mark.parametrize("overrides, options, rungs, reason", [
    ({}, OPTIONS, ["reap_in_place", "restart", "kill_init", "kill_shim"], None),
    ({}, NO_REAP, ["restart", "kill_init", "kill_shim"], None),
    ({"protected": True}, OPTIONS, None, "protected by the whitelist"),
    ({"confirmed": False}, OPTIONS, None, "not confirmed"),
    ({"shim": None}, OPTIONS, None, "no shim found: the container's runtime process is unknown"),
    ({"parent_classes": ["runtime"]}, OPTIONS, None, "runtime fault"),
    ({"parent_classes": ["runtime"]}, ALLOW_SHIM, ["kill_shim"], None),
    ({"parent_classes": ["host"]}, ALLOW_SHIM, None, "zombies held by a host process"),
    ({"id_source": "cgroup"}, OPTIONS, None, "identity unverified: container id from cgroup"),
    ({"id_source": None}, OPTIONS, None, "identity unverified: container id from nowhere"),
    ({"identity_unknown": "no pod"}, OPTIONS, None, "identity unknown: no pod"),
    # A pod's shim serves every container of the pod: its own opt-in, and never past a protected sibling.
    ({"shim_shared": True}, OPTIONS, ["reap_in_place", "restart", "kill_init"], None),
    ({"shim_shared": True, "protected_members": []}, POD_SHIM, ["reap_in_place", "restart", "kill_init", "kill_shim"],
     None),
    ({"shim_shared": True}, POD_SHIM, ["reap_in_place", "restart", "kill_init"], None),
    ({"shim_shared": True, "protected_members": ["kube-system/dns"]}, POD_SHIM,
     ["reap_in_place", "restart", "kill_init"], None),
    ({"shim_shared": True, "parent_classes": ["runtime"]}, ALLOW_SHIM, None,
     "runtime fault, and the shim serves the whole pod sandbox c1: killing it needs allow_pod_shim_kill"),
    ({"shim_shared": True, "parent_classes": ["runtime"], "protected_members": ["x/y/z"]}, POD_SHIM, None,
     "runtime fault, and another container of pod sandbox c1 is protected (x/y/z)"),
])
def test_ladder(overrides, options, rungs, reason):
    found, why = remediate.ladder(record(**overrides), options)
    assert found == rungs
    if reason:
        assert why.startswith(reason)


def node_with(tmp_path, init_start=11, zombie_state="Z"):
    node = FakeNode(tmp_path)
    node.add(100, 1, "containerd-shim", start=10, cmdline=SHIM_ARGV)
    node.add(110, 100, "app", start=init_start)
    node.add(111, 110, "w", state=zombie_state, start=12)
    return node


def test_reverify_finds_the_zombies_still_there(tmp_path):
    alive, stale = remediate.reverify(str(node_with(tmp_path).proc), record())
    assert stale is None and [z["pid"] for z in alive] == [111]


def test_reverify_reaped_zombies_are_stale(tmp_path):
    alive, stale = remediate.reverify(str(node_with(tmp_path, zombie_state="S").proc), record())
    assert alive is None and stale == "its zombies are gone since the scan"


def test_reverify_restarted_init_is_stale(tmp_path):
    alive, stale = remediate.reverify(str(node_with(tmp_path, init_start=99).proc), record())
    assert alive is None and stale == "the container's init (pid 110) is no longer the process seen"


def test_per_run_cap_defers_the_rest_and_dry_run_acts_on_nothing(tmp_path):
    node = FakeNode(tmp_path / "node")
    records = []
    for index in range(4):
        shim, init, zombie = 100 + index * 10, 101 + index * 10, 102 + index * 10
        node.add(shim, 1, "containerd-shim", start=shim, cmdline=SHIM_ARGV)
        node.add(init, shim, "app", start=init)
        node.add(zombie, init, "w", state="Z", start=zombie)
        node.containerd_bundle("k8s.io", "c%d" % index, init)
        records.append(record(container_id="c%d" % index, zombie_count=index + 1, containerd_namespace="k8s.io",
                              shim={"pid": shim, "start_time": shim, "binary": "containerd-shim-runc-v2", "id": "x"},
                              init={"pid": init, "start_time": init, "name": "app"},
                              zombies=[{"pid": zombie, "ppid": init, "start_time": zombie, "name": "w"}]))
    options = remediate.RemediationOptions(proc_root=str(node.proc), state_path=str(tmp_path / "s.json"),
                                           runtime_files=node.runtime_files(),
                                           audit_log=audit.AuditLog(str(tmp_path / "audit.log")),
                                           max_remediations_per_run=2,
                                           dry_run=True)
    result = remediate.run_remediation(options, records)
    by_id = {item["container_id"]: item["result"] for item in result["outcomes"]}
    # Most zombies first: c3 and c2 are planned, c1 and c0 wait for the next run.
    assert by_id == {"c3": "would_remediate", "c2": "would_remediate", "c1": "deferred", "c0": "deferred"}
    assert result["changed"] is False and result["summary"]["deferred"] == 2


def test_reverify_refuses_an_impostor_shim(tmp_path):
    node = FakeNode(tmp_path)
    node.add(100, 1, "containerd-shim", start=10, cmdline=["/tmp/containerd-shim"])   # named like one, no flags
    node.add(110, 100, "app", start=11)
    node.add(111, 110, "w", state="Z", start=12)
    alive, stale = remediate.reverify(str(node.proc), record())
    assert alive is None and stale == "pid 100 is not a container shim"


def test_reverify_refuses_an_init_outside_the_shim(tmp_path):
    node = FakeNode(tmp_path)
    node.add(100, 1, "containerd-shim", start=10, cmdline=SHIM_ARGV)
    node.add(110, 1, "sshd", start=11)          # same pid and start time, but not the shim's child
    node.add(111, 110, "w", state="Z", start=12)
    alive, stale = remediate.reverify(str(node.proc), record())
    assert alive is None and stale == "pid 110 is not a child of the container's shim"


def test_a_fixture_tree_is_never_acted_on_outside_dry_run(tmp_path):
    node = FakeNode(tmp_path)
    node.add(100, 1, "containerd-shim", start=10, cmdline=SHIM_ARGV)
    node.add(110, 100, "app", start=11)
    node.add(111, 110, "w", state="Z", start=12)
    options = remediate.RemediationOptions(proc_root=str(node.proc), state_path=str(tmp_path / "s.json"))
    outcome = remediate.Remediator(options).remediate(record())
    assert outcome["result"] == "skipped" and "not this system's live /proc" in outcome["reason"]
    assert outcome["rungs"] == []


def test_outcomes_survive_a_state_that_cannot_be_written_after_acting(tmp_path, monkeypatch):
    """The action happened: if the state write fails, a side file keeps it and the next run merges it."""
    from ansible.module_utils.zombie_cleaner.record import state
    options = remediate.RemediationOptions(state_path=str(tmp_path / "state.json"))
    state.prepare_directory(options.state_path)
    real_save = state.save

    def disk_full(path, data):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(state, "save", disk_full)
    increments = {"containers_cleaned_total": 1, "cleanup_failures_total": 0}
    remembered = [{"time": 1, "container_id": "c1", "result": "cured"}]
    warnings = remediate._persist(options, increments, remembered, ["c1"], now=1)
    assert any("outcomes kept in %s.pending" % options.state_path in w for w in warnings), warnings
    monkeypatch.setattr(state, "save", real_save)
    remediate._persist(options, {"containers_cleaned_total": 2}, [], [], now=2)
    saved = json.loads((tmp_path / "state.json").read_text())
    assert saved["counters"]["containers_cleaned_total"] == 3
    assert [item["container_id"] for item in saved["remediations"]] == ["c1"]
    assert not (tmp_path / "state.json.pending").exists()


def test_tally_counts_results_apart_from_persisting():
    outcomes = [{"result": "cured", "zombies_before": 3, "timeouts": 1},
                {"result": "reaped_in_place", "zombies_before": 4, "zombies_after": 1, "timeouts": 0},
                {"result": "failed", "zombies_before": 2, "timeouts": 2}]
    summary, increments = remediate.tally(outcomes)
    assert summary["cured"] == 1 and summary["failed"] == 1 and summary["timeouts"] == 3
    assert increments == {"containers_cleaned_total": 2, "containers_reaped_in_place_total": 1,
                          "zombies_reaped_in_place_total": 3, "cleanup_failures_total": 1,
                          "reap_left_attached_total": 0, "container_operation_timeouts_total": 3}


def test_a_parent_left_attached_stops_the_ladder_and_is_counted_for_its_alert(tmp_path, monkeypatch):
    """reaper.reap's rarest answer (its tracer could not let go in time) is never a step to climb past."""
    from ansible.module_utils.zombie_cleaner.cure import reaper
    from ansible.module_utils.zombie_cleaner.record import metrics
    node = FakeNode(tmp_path / "node")
    node.add(100, 1, "containerd-shim", start=10, cmdline=SHIM_ARGV)
    node.add(110, 100, "app", start=11)
    node.add(111, 110, "w", state="Z", start=12)
    node.containerd_bundle("k8s.io", "c1", 110)
    held = {"parent": {"pid": 110, "name": "app"}, "ok": False, "verdict": "failed", "left_attached": True,
            "reason": "LEFT ATTACHED: the parent could not be stopped again", "reaped": [], "stop_seconds": 0.3}
    monkeypatch.setattr(reaper, "reap", lambda *args, **kwargs: dict(held))
    monkeypatch.setattr(remediate.procfs, "is_live", lambda proc_root: True)    # act on the fixture's word
    options = remediate.RemediationOptions(proc_root=str(node.proc), state_path=str(tmp_path / "s.json"),
                                           runtime_files=node.runtime_files(), metrics_textfile_dir=str(tmp_path))
    parents = [{"pid": 110, "name": "app", "start_time": 11, "parent_class": "application"}]
    result = remediate.run_remediation(options, [record(containerd_namespace="k8s.io", parents=parents)])
    outcome = result["outcomes"][0]
    assert outcome["result"] == "failed" and outcome["left_attached"] is True
    assert [step["rung"] for step in outcome["rungs"]] == ["reap_in_place"]      # no restart, no kill after it
    assert "LEFT ATTACHED" in outcome["reason"]
    assert "zombie_cleaner_reap_left_attached_total 1" in (tmp_path / metrics.TEXTFILE_NAME).read_text()
