"""Confirmation takes time, not just runs: the same zombies, seen in confirm_count consecutive runs that span
(confirm_count - 1) x check_interval, less 20 % for a schedule's jitter. Only confirmed zombies are cured.

Fixture /proc trees (a containerd container and a host parent) and the scan's own clock (now=).
"""

import json

from ansible.module_utils.zombie_cleaner.observe import scan
from ansible.module_utils.zombie_cleaner.record import audit
from helpers.procfixture import FakeNode

APP = "a" * 64
INTERVAL = 300.0          # check_interval 5m: confirmation needs 2 x 300 s x 0.8 = 480 s


class Node:
    """A node with one application container (zombies of its init) and one host parent with zombies."""

    def __init__(self, tmp_path):
        self.tmp_path = tmp_path
        self.fake = FakeNode(tmp_path / "node")
        self.fake.add(1, 0, "init")
        self.fake.add(100, 1, "containerd-shim", cmdline=["containerd-shim-runc-v2", "-namespace", "k8s.io",
                                                          "-id", APP])
        self.fake.add(101, 100, "app", cgroup="/k8s.io/" + APP)
        self.fake.containerd_bundle("k8s.io", APP, 101, {
            "io.kubernetes.cri.sandbox-name": "web-1", "io.kubernetes.cri.sandbox-namespace": "shop",
            "io.kubernetes.cri.container-name": "main"})
        self.fake.add(300, 1, "cron")
        self.next_pid = 1000

    def zombie(self, parent):
        self.next_pid += 1
        self.fake.add(self.next_pid, parent, "child", state="Z", start=self.next_pid)
        return self.next_pid

    def scan(self, now, **settings):
        options = dict(proc_root=str(self.fake.proc), state_path=str(self.tmp_path / "state" / "state.json"),
                       cgroup_root=str(self.fake.cgroup_root), runtime_files=self.fake.runtime_files(),
                       check_interval=INTERVAL, reap_host_zombies=True,
                       audit_log=audit.AuditLog(str(self.tmp_path / "log" / "audit.log")))
        options.update(settings)
        return scan.run_scan(scan.ScanOptions(**options), now=now)


def host_group(result, parent=300):
    return next(group for group in result["host_groups"] if group["parent"]["pid"] == parent)


def cured_pids(result):
    return sorted(zombie["pid"] for record in result["to_cure"]["containers"] + result["to_cure"]["host_groups"]
                  for zombie in record["zombies"])


def test_three_quick_runs_half_a_second_apart_confirm_nothing(tmp_path):
    node = Node(tmp_path)
    made = [node.zombie(300), node.zombie(300)]
    results = [node.scan(1000.0 + 0.5 * run) for run in range(3)]
    last = host_group(results[-1])
    assert last["sightings"] == 3 and last["confirmed"] is False
    assert results[-1]["to_cure"] == {"containers": [], "host_groups": []}
    assert all(zombie["confirmed"] is False for zombie in last["zombies"])
    # The positive control: a run past the span confirms the same zombies.
    later = node.scan(1000.0 + 2 * INTERVAL)
    assert host_group(later)["confirmed"] is True and cured_pids(later) == made


# (confirm_count, gaps between the runs, confirmed at the last run). The span needed: 480 s for 3 runs.
SPANS = [
    (3, (INTERVAL, INTERVAL), True),                    # on schedule
    (3, (0.8 * INTERVAL, 0.8 * INTERVAL), True),        # each run 20 % early: within the tolerance
    (3, (INTERVAL, 0.6 * INTERVAL), True),              # on time, then early: 480 s, just enough
    (3, (INTERVAL, 0.5 * INTERVAL), False),             # on time, then very early: 450 s
    (3, (0.6 * INTERVAL, 0.6 * INTERVAL), False),       # 360 s in all: too soon
    (3, (1.0, 2 * INTERVAL), True),                     # a retry, then a late run: 601 s over 3 runs
    (3, (INTERVAL,), False),                            # the span, but only 2 runs
    (2, (0.8 * INTERVAL,), True),
    (2, (0.7 * INTERVAL,), False),
    (1, (), True),                                      # confirm_count 1: at first sight
]


def test_confirmation_needs_confirm_count_runs_over_their_span_less_a_fifth(tmp_path):
    outcomes = []
    for index, (confirm_count, gaps, _) in enumerate(SPANS):
        node = Node(tmp_path / str(index))
        node.zombie(300)
        now = 1000.0
        result = node.scan(now, confirm_count=confirm_count)
        for gap in gaps:
            now += gap
            result = node.scan(now, confirm_count=confirm_count)
        outcomes.append(host_group(result)["confirmed"])
    assert outcomes == [confirmed for _, _, confirmed in SPANS]


def test_many_quick_runs_never_confirm_before_the_span(tmp_path):
    node = Node(tmp_path)
    node.zombie(300)
    for run in range(20):
        result = node.scan(1000.0 + 20 * run)                  # 380 s over 20 runs
    assert host_group(result)["sightings"] == 20 and host_group(result)["confirmed"] is False


def test_only_the_old_zombies_are_cured_the_new_ones_keep_their_exit_status(tmp_path):
    node = Node(tmp_path)
    old = [node.zombie(101), node.zombie(300)]
    node.scan(1000.0)
    node.scan(1000.0 + INTERVAL)
    new = [node.zombie(101), node.zombie(300)]                  # first seen in the last run but one
    node.scan(1000.0 + 2 * INTERVAL)
    newest = [node.zombie(101)]                                 # first seen in this run
    result = node.scan(1000.0 + 2 * INTERVAL + 1)
    [record] = result["to_cure"]["containers"]
    assert record["container_id"] == APP and [zombie["pid"] for zombie in record["zombies"]] == [old[0]]
    assert record["zombie_count"] == 3 and record["unconfirmed_zombies"] == 2
    [group] = result["to_cure"]["host_groups"]
    assert [zombie["pid"] for zombie in group["zombies"]] == [old[1]]
    assert group["zombie_count"] == 2 and group["unconfirmed_zombies"] == 1
    container = next(item for item in result["containers"] if item["container_id"] == APP)
    assert container["zombie_count"] == 3 and container["confirmed"] is True
    assert {zombie["pid"]: zombie["confirmed"] for zombie in container["zombies"]} == {
        old[0]: True, new[0]: False, newest[0]: False}
    # The scan's own lists still show every zombie.
    assert sorted(zombie["pid"] for zombie in host_group(result)["zombies"]) == [old[1], new[1]]


def test_a_state_file_without_run_counts_still_confirms_what_it_can_prove(tmp_path):
    # Written before per-zombie run counts: a zombie seen since the streak began was in every run of it;
    # one that came later is counted as seen once.
    node = Node(tmp_path)
    steady, later = node.zombie(300), node.zombie(300)
    first = node.scan(1000.0)
    path = tmp_path / "state" / "state.json"
    data = json.loads(path.read_text())
    key = host_group(first)["key"]
    data["host_groups"][key] = {"count": 2, "since": 1000.0, "last_seen": 1300.0, "confirmed": False,
                                "zombies": {"%d:%d" % (steady, steady): 1000.0, "%d:%d" % (later, later): 1300.0}}
    path.write_text(json.dumps(data))
    result = node.scan(1600.0)
    assert cured_pids(result) == [steady]
    assert {zombie["pid"]: zombie["confirmed"] for zombie in host_group(result)["zombies"]} == {
        steady: True, later: False}
    entry = json.loads(path.read_text())["host_groups"][key]
    assert entry["runs"] == {"%d:%d" % (steady, steady): 3, "%d:%d" % (later, later): 2}


def test_the_audit_says_confirmed_once_when_it_happens(tmp_path):
    node = Node(tmp_path)
    node.zombie(101)
    for now in (1000.0, 1000.5, 1001.0, 1000.0 + 2 * INTERVAL, 1000.0 + 3 * INTERVAL):
        node.scan(now)
    lines = [json.loads(text) for text in (tmp_path / "log" / "audit.log").read_text().splitlines()]
    confirmed = [line for line in lines if line["action"] == "confirm"]
    assert [line["time"] for line in confirmed] == ["1970-01-01T00:26:40Z"]     # the fourth run, at 1600 s
    assert confirmed[0]["confirmed_zombies"] == 1 and confirmed[0]["container_id"] == APP


def test_the_decision_says_how_far_confirmation_has_come(tmp_path):
    node = Node(tmp_path)
    node.zombie(101)
    node.scan(1000.0)
    result = node.scan(1000.5)
    container = next(item for item in result["containers"] if item["container_id"] == APP)
    assert container["decision"] == "not confirmed yet: the same zombies seen in 2 runs over 0s"
