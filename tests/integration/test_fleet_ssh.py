"""The job across a fleet reached over real SSH: five nodes, each in its own PID, mount and UTS
namespace with its own sshd (tests/fleet/fleet.py); node5 is reached through paramiko.

The zombies are made inside the nodes by real parents that never wait; with
zombie_cleaner_reap_host_zombies they are cured by reaping in place over SSH.
"""

import json
import os
import re
import subprocess

import pytest

from helpers.fleet import FLEET_NODES as NODES
from helpers.fleet import recap

# Confirm on the second run, cure host zombies in place, no waiting for replacements.
CURE = ["-e", "zombie_cleaner_confirm_count=2", "-e", "zombie_cleaner_reap_host_zombies=true",
        "-e", "zombie_cleaner_replacement_wait=1s"]


def remediated_nodes(stdout):
    """For each remediation batch (one PLAY per serial batch), the nodes that reaped zombies in place."""
    batches = stdout.split("PLAY [Remediate")[1:]
    found = []
    for chunk in batches:
        hosts = re.findall(r"ok: \[(node\d+)\] =>\s*\n\s*msg:\s*\n\s*- '?host python3\[\d+\] \(host:[^)]*\): reaped_in_place",
                           chunk)
        found.append(sorted(set(hosts)))
    return found


def test_each_node_sees_and_counts_only_its_own_zombies(clean_fleet, tmp_path):
    made = {"node2": clean_fleet.zombies("node2", 3), "node4": clean_fleet.zombies("node4", 2)}
    results = tmp_path / "results"
    for _ in range(2):
        clean_fleet.playbook("scan.yml", "-e", "zombie_cleaner_results_dir=%s" % results)
    for name in NODES:
        scan = json.loads((results / ("%s.scan.json" % name)).read_text())
        assert scan["node"] == name                      # its own UTS namespace
        groups = scan["host_groups"]
        if name in made:
            assert len(groups) == 1, groups
            group = groups[0]
            assert sorted(item["pid"] for item in group["zombies"]) == sorted(made[name])
            assert group["parent"]["name"] == "python3" and group["sightings"] == 2
            # The node's own process table agrees (the ps oracle inside the node).
            assert clean_fleet.zombie_pids(name) == sorted(made[name])
        else:
            assert groups == [] and scan["zombie_count"] == 0, (name, groups)
        state = clean_fleet.state(name)
        assert state["last_run"] and len(state["history"]) == 2


def test_confirmed_zombies_are_cured_in_rolling_batches_in_order(clean_fleet):
    parents = {}
    for name in ("node2", "node3", "node4", "node5"):
        clean_fleet.zombies(name, 2)
        table = clean_fleet.processes(name)
        parents[name] = sorted({z["ppid"] for z in table if z["state"] == "Z"})
    first = clean_fleet.playbook("site.yml", *CURE, "-e", "zombie_cleaner_serial=2")
    # One sighting is not a confirmation: no node takes part in the remediation play.
    assert remediated_nodes(first.stdout) == [[]] and "skipping: no hosts matched" in first.stdout
    assert all(clean_fleet.zombie_pids(name) for name in parents)

    second = clean_fleet.playbook("site.yml", *CURE, "-e", "zombie_cleaner_serial=2")
    # Only the nodes with confirmed work take part: serial 2 over node2..node5, in inventory order.
    assert remediated_nodes(second.stdout) == [["node2", "node3"], ["node4", "node5"]], second.stdout[-3000:]
    for name, pids in parents.items():
        assert clean_fleet.zombie_pids(name) == [], name
        # Cured in place: the same parent is still running.
        alive = {p["pid"] for p in clean_fleet.processes(name)}
        assert set(pids) <= alive, (name, pids)
    times = {name: clean_fleet.state(name)["remediations"][-1]["time"] for name in parents}
    assert max(times["node2"], times["node3"]) < min(times["node4"], times["node5"])
    assert all(counts["failed"] == 0 and counts["unreachable"] == 0 for counts in recap(second.stdout).values())


def test_node_lost_mid_run_is_reported_and_the_rest_go_on(clean_fleet):
    for name in NODES:
        clean_fleet.zombies(name, 2)
    clean_fleet.playbook("site.yml", *CURE, "-e", "zombie_cleaner_remediate_enabled=false")
    # Scan every node, then lose node3 before the remediation batches reach it.
    result = clean_fleet.playbook(
        "tests/fleet/site_with_outage.yml", *CURE, "-e", "zombie_cleaner_serial=2",
        "-e", "zombie_cleaner_max_fail_percentage=50", "-e", "fleet_dir=%s" % clean_fleet.dir,
        "-e", "fleet_outage_node=node3", check=False)
    assert result.returncode != 0, result.stdout[-3000:]
    counts = recap(result.stdout)
    # Lost while being cured: reported as failed, so it counts against the failure budget.
    assert counts["node3"]["failed"] == 1, counts
    assert "unreachable during remediation" in result.stdout
    assert remediated_nodes(result.stdout) == [["node1", "node2"], ["node4"], ["node5"]]
    for name in ("node1", "node2", "node4", "node5"):
        assert clean_fleet.zombie_pids(name) == [], name
        assert counts[name]["failed"] == 0 and counts[name]["unreachable"] == 0


def test_failure_budget_stops_the_rollout(clean_fleet):
    for name in NODES:
        clean_fleet.zombies(name, 2)
    clean_fleet.playbook("site.yml", *CURE, "-e", "zombie_cleaner_remediate_enabled=false")
    before = {name: clean_fleet.zombie_pids(name) for name in NODES}
    result = clean_fleet.playbook(
        "tests/fleet/site_with_outage.yml", *CURE, "-e", "zombie_cleaner_serial=2",
        "-e", "zombie_cleaner_max_fail_percentage=0", "-e", "fleet_dir=%s" % clean_fleet.dir,
        "-e", "fleet_outage_node=node1", check=False)
    assert result.returncode != 0
    # node1 is lost in the first batch (node2 is cured in it): that spends the budget of 0 %,
    # so the later batches never start.
    assert remediated_nodes(result.stdout) == [["node2"]], result.stdout[-3000:]
    assert clean_fleet.zombie_pids("node2") == []
    for name in ("node3", "node4", "node5"):
        assert clean_fleet.zombie_pids(name) == before[name], name
        assert not clean_fleet.state(name).get("remediations"), name
    assert "NO MORE HOSTS LEFT" in result.stdout


@pytest.mark.parametrize("limit, touched", [("node2", ["node2"]),
                                            ("workers", ["node2", "node3", "node4", "node5"]),
                                            ("control_plane", ["node1"])])
def test_limit_touches_only_the_named_hosts(clean_fleet, limit, touched):
    for name in NODES:
        clean_fleet.zombies(name, 1)
    before = {name: clean_fleet.state_bytes(name) for name in NODES}
    result = clean_fleet.playbook("site.yml", "-l", limit)
    assert sorted(recap(result.stdout)) == touched
    for name in NODES:
        if name in touched:
            assert clean_fleet.state(name)["containers"] == {} and clean_fleet.state(name)["host_groups"], name
        else:
            assert clean_fleet.state_bytes(name) == before[name] is None, name


def test_paramiko_node_is_reached_through_paramiko_with_host_key_checking(clean_fleet, tmp_path):
    env = clean_fleet.env()
    result = subprocess.run(["ansible", "-i", clean_fleet.inventory, "node5", "-m", "ansible.builtin.ping", "-vvv"],
                            cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))),
                            env=dict(os.environ, **env), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-2000:]
    assert "ESTABLISH PARAMIKO SSH CONNECTION" in result.stdout + result.stderr
    assert "ping: pong" in result.stdout
    assert "paramiko connection plugin is deprecated" in result.stdout + result.stderr

    # Host key checking is on for both transports: with node1's key recorded for
    # every address, node2 (OpenSSH) and node5 (paramiko) are refused.
    wrong = tmp_path / "home"
    (wrong / ".ssh").mkdir(parents=True)
    lines = open(clean_fleet.known_hosts).read().splitlines()
    key = lines[0].split(" ", 1)[1]
    forged = "".join("%s %s\n" % (line.split(" ", 1)[0], key) for line in lines)
    (wrong / ".ssh" / "known_hosts").write_text(forged)
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(open(clean_fleet.inventory).read().replace(clean_fleet.known_hosts, str(wrong / ".ssh" / "known_hosts")))
    refused = subprocess.run(["ansible", "-i", str(inventory), "node2,node5", "-m", "ansible.builtin.ping"],
                             cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))),
                             env=dict(os.environ, **dict(env, HOME=str(wrong))), capture_output=True, text=True,
                             timeout=120)
    assert refused.returncode == 4, refused.stdout
    assert "node2 | UNREACHABLE" in refused.stdout and "node5 | UNREACHABLE" in refused.stdout
    assert "REMOTE HOST IDENTIFICATION HAS CHANGED" in refused.stdout + refused.stderr
    assert "host key" in refused.stdout.split("node5 | UNREACHABLE", 1)[1].lower()
