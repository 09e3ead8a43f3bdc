"""The test fleet script itself, as an operator types it (tests/fleet/fleet.py up/zombies/stop/start/down):
each node is its own host over SSH, a stopped node is unreachable, and `down` leaves nothing behind."""

import os
import subprocess
import sys

import pytest

from helpers.ansible_run import ROOT

FLEET = os.path.join(ROOT, "tests", "fleet", "fleet.py")
# Addresses and port of their own: never in the way of the session's fleet or molecule's.
PORT, FIRST = 2226, 60


def fleet(directory, *args, check=True):
    result = subprocess.run([sys.executable, FLEET, "--dir", str(directory)] + list(args),
                            capture_output=True, text=True, timeout=120)
    if check:
        assert result.returncode == 0, result.stdout + result.stderr
    return result


def ssh(directory, node_index, command):
    """OpenSSH to node N with the fleet's key and known_hosts (host key checking on); no control master."""
    return subprocess.run(
        ["ssh", "-i", str(directory / "id_ed25519"), "-o", "BatchMode=yes", "-o", "ConnectTimeout=5",
         "-o", "StrictHostKeyChecking=yes", "-o", "UserKnownHostsFile=%s" % (directory / "known_hosts"),
         "-o", "ControlMaster=no", "-o", "ControlPath=none",
         "-p", str(PORT), "root@127.0.0.%d" % (FIRST + node_index - 1), command],
        capture_output=True, text=True, timeout=60)


def processes_mentioning(text):
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as handle:
                if text.encode() in handle.read():
                    found.append(int(pid))
        except OSError:
            pass
    return found


def listening_on(address):
    output = subprocess.run(["ss", "-ltnH"], capture_output=True, text=True, check=True).stdout
    return "%s:%d" % (address, PORT) in output


@pytest.fixture
def fleet_dir(tmp_path):
    directory = tmp_path / "fleet"
    yield directory
    fleet(directory, "down", check=False)                  # whatever the test did


@pytest.mark.usefixtures("fleet")  # the session's fleet is up too: the two must not meet
def test_fleet_script_nodes_are_separate_hosts_and_down_leaves_nothing(fleet_dir):
    fleet(fleet_dir, "up", "--nodes", "2", "--port", str(PORT), "--first-address", str(FIRST))
    # Each node: its own hostname (UTS) and its own process table (PID namespace), reached over SSH.
    for index in (1, 2):
        answer = ssh(fleet_dir, index, "hostname; ps -eo pid= | wc -l")
        assert answer.returncode == 0, answer.stderr
        hostname, count = answer.stdout.split()
        assert hostname == "node%d" % index
        assert int(count) < 15, answer.stdout               # the host has hundreds
    made = [int(pid) for pid in fleet(fleet_dir, "zombies", "node2", "3").stdout.split()]
    table = ssh(fleet_dir, 2, "ps -eo pid=,stat=").stdout.split("\n")
    assert sorted(int(line.split()[0]) for line in table if line.split()[1:] == ["Z"]) == sorted(made)
    assert ssh(fleet_dir, 1, "ps -eo stat=").stdout.split().count("Z") == 0   # node1 sees none of them

    # A stopped node is unreachable, and comes back on start with a fresh process table.
    fleet(fleet_dir, "stop", "node2")
    assert not listening_on("127.0.0.%d" % (FIRST + 1))
    assert ssh(fleet_dir, 2, "true").returncode == 255
    fleet(fleet_dir, "start", "node2")
    assert ssh(fleet_dir, 2, "ps -eo stat=").stdout.split().count("Z") == 0

    # A wrong host key is refused: known_hosts is really checked.
    (fleet_dir / "known_hosts").write_text((fleet_dir / "known_hosts").read_text().replace(
        "[127.0.0.%d]" % FIRST, "[127.0.0.%d]" % (FIRST + 5)))
    assert ssh(fleet_dir, 1, "true").returncode == 255

    fleet(fleet_dir, "down")
    assert processes_mentioning(str(fleet_dir)) == []      # no node init or sshd left
    assert not listening_on("127.0.0.%d" % FIRST) and not listening_on("127.0.0.%d" % (FIRST + 1))
    with open("/proc/self/mountinfo") as handle:
        assert str(fleet_dir) not in handle.read()


def test_fleet_script_refuses_what_it_cannot_do(fleet_dir):
    result = fleet(fleet_dir, "up", "--nodes", "300", "--port", str(PORT), check=False)
    assert result.returncode == 1 and "does not fit" in result.stderr
    result = fleet(fleet_dir, "zombies", "node9", "1", check=False)
    assert result.returncode == 1 and "no node 'node9'" in result.stderr
    fleet(fleet_dir, "up", "--nodes", "1", "--port", str(PORT), "--first-address", str(FIRST))
    fleet(fleet_dir, "stop", "node1")
    result = fleet(fleet_dir, "zombies", "node1", "1", check=False)
    assert result.returncode == 1 and "node node1 is not running" in result.stderr
    fleet(fleet_dir, "start", "node1")
    result = fleet(fleet_dir, "up", "--nodes", "1", "--port", str(PORT), "--first-address", str(FIRST), check=False)
    assert result.returncode == 1 and "holds a running fleet; run down first" in result.stderr
