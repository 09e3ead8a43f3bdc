"""The scan's pure step, evaluate(observation, previous_state, options, now): sightings, decisions, ranking,
summary and diff from records in memory. No /proc, no state file, no lock."""

import copy

import pytest

from ansible.module_utils.zombie_cleaner.observe import records, scan
from ansible.module_utils.zombie_cleaner.record import state

BOOT = "11111111-2222-3333-4444-555555555555"
OPTIONS = scan.ScanOptions(confirm_count=3, check_interval="5m")
SHIM = {"pid": 100, "name": "containerd-shim", "start_time": 10, "kind": "containerd",
        "binary": "containerd-shim-runc-v2", "id": "web"}


def zombie(pid, ppid=110, parent_class="application"):
    return {"pid": pid, "ppid": ppid, "name": "sh", "start_time": pid, "parent_class": parent_class}


def container(container_id, zombies, namespace="shop", pod="web-1", classes=("application",), pressure=None):
    return records.ContainerRecord(
        container_id=container_id, id_source="bundle", runtime="containerd", containerd_namespace="k8s.io",
        shim=dict(SHIM, id=container_id), init={"pid": 110, "name": "app", "start_time": 11},
        namespace=namespace, pod=pod, container_name="app", zombies=[zombie(pid) for pid in zombies],
        parents=[{"pid": 110, "name": "app", "start_time": 11, "parent_class": cls, "zombie_count": len(zombies)}
                 for cls in classes], parent_classes=list(classes), pids_pressure=pressure)


def host_group(parent_pid, zombies):
    return records.HostGroup(key="host:%d:5" % parent_pid, parent={"pid": parent_pid, "name": "cron", "start_time": 5},
                             parent_class="host", parent_is_host_init=parent_pid == 1,
                             zombies=[zombie(pid, parent_pid, "host") for pid in zombies])


def observation(containers=(), groups=()):
    return scan.Observation(BOOT, {item.container_id: item for item in containers}, {g.key: g for g in groups},
                            sum(item.zombie_count for item in list(containers) + list(groups)), 400,
                            {"tasks": 400, "pid_max": 4194304, "threads_max": 60000, "pressure": 0.0067}, [])


def runs(make, times, options=OPTIONS):
    """evaluate once per time, each on the state the one before left: the last Evaluation."""
    current = state.empty_state(BOOT)
    for now in times:
        verdict = scan.evaluate(make(), current, options, now)
        current = verdict.state
    return verdict


def test_three_runs_over_the_span_confirm_and_the_whitelist_protects():
    def made():
        return observation([container("a" * 64, [201, 202]), container("b" * 64, [301], namespace="kube-system")])
    verdict = runs(made, [1000.0, 1300.0, 1600.0])
    by_id = {item.container_id: item for item in verdict.containers}
    app, system = by_id["a" * 64], by_id["b" * 64]
    assert (app.sightings, app.confirmed, app.candidate, app.decision) == (3, True, True, "confirmed")
    assert system.protected and system.protected_by == {"pattern": "^kube-system-.*", "subject": "kube-system-web-1"}
    assert not system.candidate and system.decision == "protected by whitelist pattern ^kube-system-.*"
    assert [z["confirmed"] for z in app.zombies] == [True, True] and app.zombies[0]["first_seen"] == 1000.0
    assert verdict.summary["confirmed"] == 2 and verdict.summary["candidates"] == 1
    assert [item["container_id"] for item in scan.work_to_cure(verdict.containers, [], False)["containers"]] == [
        "a" * 64]


def test_quick_runs_are_not_confirmed_and_say_how_far_they_came():
    verdict = runs(lambda: observation([container("a" * 64, [201])]), [1000.0, 1001.0, 1002.0])
    (app,) = verdict.containers
    assert app.confirmed is False and app.decision == "not confirmed yet: the same zombies seen in 3 runs over 2s"
    assert "confirmed after about 3s instead of 900s" in verdict.warnings[0]


@pytest.mark.parametrize("record, decision", [
    (container("c" * 64, [201], classes=("runtime",)), "zombies held by the runtime itself (containerd-shim-runc-v2)"),
    (container("c" * 64, [201], namespace=None, pod=None), "identity unknown: "),
])
def test_decisions_fail_closed(record, decision):
    record.identity_unknown = None if record.pod else "a Kubernetes container whose pod cannot be read"
    (judged,) = scan.evaluate(observation([record]), state.empty_state(BOOT),
                              scan.ScanOptions(confirm_count=1), 1000.0).containers
    assert judged.confirmed and not judged.candidate and judged.decision.startswith(decision)


def test_ranking_closest_to_failing_forks_first_then_most_zombies():
    made = observation([container("a" * 64, [1, 2, 3]), container("b" * 64, [4], pressure=0.97),
                        container("c" * 64, [5, 6, 7, 8])])
    verdict = scan.evaluate(made, state.empty_state(BOOT), OPTIONS, 1000.0)
    assert [item.container_id[0] for item in verdict.containers] == ["b", "c", "a"]
    assert verdict.summary["max_pids_pressure"] == 0.97


def test_evaluate_changes_neither_its_observation_nor_the_previous_state():
    made = observation([container("a" * 64, [201])], [host_group(300, [401, 402])])
    previous = runs(lambda: observation([container("a" * 64, [201])]), [1000.0]).state
    kept_observation, kept_previous = copy.deepcopy(made), copy.deepcopy(previous)
    verdict = scan.evaluate(made, previous, OPTIONS, 1300.0)
    assert made == kept_observation and previous == kept_previous
    assert verdict.state["containers"]["a" * 64]["count"] == 2 and verdict.state["last_run"] == 1300.0


def test_changed_and_the_diff_follow_the_sightings():
    first = scan.evaluate(observation([container("a" * 64, [201])]), state.empty_state(BOOT), OPTIONS, 1000.0)
    assert first.changed and first.diff["before"] == {"containers": {}, "host_groups": {}}
    assert first.diff["after"]["containers"]["a" * 64] == {"count": 1, "zombie_count": 1, "zombies": ["201:201"]}
    quiet = scan.evaluate(observation(), state.empty_state(BOOT), OPTIONS, 1000.0)
    assert not quiet.changed


def test_the_result_lists_ten_zombies_of_a_group_oldest_first_and_counts_them_all():
    previous = runs(lambda: observation(groups=[host_group(300, range(1000, 1005))]), [1000.0])
    verdict = scan.evaluate(observation(groups=[host_group(300, range(1000, 1030))]), previous.state,
                            scan.ScanOptions(confirm_count=2, check_interval="1s"), 1300.0)
    (group,) = verdict.host_groups
    shown = group.to_result()
    assert shown["zombie_count"] == 30 and shown["zombies_omitted"] == 20 and len(shown["zombies"]) == 10
    assert [z["pid"] for z in shown["zombies"][:5]] == list(range(1000, 1005))        # seen first, listed first
    assert (shown["oldest_seen"], shown["newest_seen"], shown["confirmed_zombies"]) == (1000.0, 1300.0, 5)
    cure = group.to_cure()
    assert [z["pid"] for z in cure["zombies"]] == list(range(1000, 1005)) and cure["confirmed_until"] == 1000.0
    assert (cure["confirmed_zombies"], cure["unconfirmed_zombies"]) == (5, 25)
