"""pids cgroup use and limit, cgroup v1 and v2, and the pod-level limit above a container."""

import pytest

from ansible.module_utils.zombie_cleaner.observe import cgroups
from helpers.procfixture import FakeNode

CID = "c" * 64


def entries(text):
    return [tuple(line.split(":", 2)) for line in text.strip().splitlines()]


@pytest.mark.parametrize("v1", [True, False], ids=["v1", "v2"])
def test_own_limit(tmp_path, v1):
    node = FakeNode(tmp_path)
    node.pids_cgroup("/docker/" + CID, 6, 6, v1=v1)
    lines = entries("12:pids:/docker/%s\n0::/\n" % CID) if v1 else entries("0::/docker/%s\n" % CID)
    usage = cgroups.pids_usage(lines, str(node.cgroup_root))
    assert usage == {"current": 6, "max": 6, "pressure": 1.0, "cgroup": "/docker/" + CID,
                     "limit_cgroup": "/docker/" + CID}


def test_unlimited_container_under_a_limited_pod_reports_the_pod_pressure(tmp_path):
    node = FakeNode(tmp_path)
    pod = "/kubepods/besteffort/pod0b1c2d3e-0000-1111-2222-333344445555"
    node.pids_cgroup(pod, 90, 100)
    node.pids_cgroup(pod + "/" + CID, 40, "max")
    usage = cgroups.pids_usage(entries("3:pids:%s/%s\n" % (pod, CID)), str(node.cgroup_root))
    assert usage["current"] == 40 and usage["max"] is None
    assert usage["pressure"] == 0.9 and usage["limit_cgroup"] == pod


def test_no_limit_anywhere_has_no_pressure(tmp_path):
    node = FakeNode(tmp_path)
    node.pids_cgroup("/docker/" + CID, 3, "max")
    usage = cgroups.pids_usage(entries("12:pids:/docker/%s\n" % CID), str(node.cgroup_root))
    assert usage["current"] == 3 and usage["max"] is None and usage["pressure"] is None


def test_hybrid_host_without_pids_hierarchy_and_unreadable_files_give_none(tmp_path):
    node = FakeNode(tmp_path)
    node.cgroup_root.mkdir(parents=True)
    assert cgroups.pids_usage(entries("12:pids:/docker/%s\n" % CID), str(node.cgroup_root)) is None
    assert cgroups.pids_usage(entries("0::/docker/%s\n" % CID), str(node.cgroup_root)) is None
    assert cgroups.pids_usage(entries("4:memory:/x\n"), str(node.cgroup_root)) is None

