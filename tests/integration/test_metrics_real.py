"""Metrics through a real node_exporter, pids numbers against a real Docker container's cgroup files."""

import os

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ansible.module_utils.zombie_cleaner.observe import cgroups, procfs
from helpers import containers
from helpers.ansible_run import node_paths, playbook
from helpers.node_exporter import BINARY, NodeExporter


@pytest.fixture
def node_exporter(tmp_path):
    if BINARY is None:
        if os.environ.get("ZC_REQUIRE_RUNTIMES") == "1":
            pytest.fail("prometheus-node-exporter is not installed")
        pytest.skip("prometheus-node-exporter is not installed")
    exporter = NodeExporter(str(tmp_path))
    yield exporter
    exporter.close()


def value(families, family, sample, labels=None):
    found = [s.value for s in families[family].samples
             if s.name == sample and all(s.labels.get(k) == v for k, v in (labels or {}).items())]
    assert len(found) == 1, (sample, labels, found)
    return found[0]


def pids_files(pid):
    """pids.current and pids.max of pid's own pids cgroup, read straight from the files."""
    entries = procfs.read_cgroup("/proc", pid)
    v1 = cgroups.cgroup_path(entries, "pids")
    directory = "/sys/fs/cgroup/pids" + v1 if v1 is not None else "/sys/fs/cgroup" + cgroups.cgroup_path(entries)

    def read(name):
        with open(os.path.join(directory, name)) as handle:
            return handle.read().strip()
    return int(read("pids.current")), read("pids.max")


def test_node_exporter_serves_every_family_counters_grow_and_pids_match_the_cgroup(
        runtimes, tmp_path, cleanup, node_exporter):
    box = containers.DockerContainer(zombies=3, extra=["--pids-limit", "20"])
    cleanup(box)
    expected_pids = pids_files(box.init_pid)
    assert expected_pids[1] == "20"
    site = ["playbooks/site.yml", *node_paths(tmp_path), "-e", "zombie_cleaner_confirm_count=2",
            "-e", "zombie_cleaner_container_timeout=9s", "-e", "zombie_cleaner_replacement_wait=2s"]

    playbook(*site)
    textfile = (tmp_path / "zombie_cleaner.prom").read_text()
    ours = {family.name for family in text_string_to_metric_families(textfile)}
    served = node_exporter.scrape()
    assert ours <= set(served), "node_exporter does not serve %s" % sorted(ours - set(served))
    assert value(served, "node_textfile_scrape_error", "node_textfile_scrape_error") == 0
    labels = {"container_id": box.id, "runtime": "docker", "container": box.name}
    assert value(served, "zombie_cleaner_container_zombie_processes",
                 "zombie_cleaner_container_zombie_processes", labels) == 3
    assert value(served, "zombie_cleaner_container_pids_current",
                 "zombie_cleaner_container_pids_current", labels) == expected_pids[0]
    assert value(served, "zombie_cleaner_container_pids_max", "zombie_cleaner_container_pids_max", labels) == 20
    assert value(served, "zombie_cleaner_container_pids_pressure", "zombie_cleaner_container_pids_pressure",
                 labels) == round(expected_pids[0] / 20.0, 4)
    assert value(served, "zombie_cleaner_zombie_processes_found", "zombie_cleaner_zombie_processes_found") >= 3

    # Run 2 confirms and cures the container. Its command makes new zombies after every start,
    # so it is confirmed and cured again later: counters only ever go up.
    history = []
    for _ in range(3):
        playbook(*site)
        served = node_exporter.scrape()
        history.append((value(served, "zombie_cleaner_containers_cleaned", "zombie_cleaner_containers_cleaned_total"),
                        value(served, "zombie_cleaner_check_duration_seconds",
                              "zombie_cleaner_check_duration_seconds_count")))
    cleaned = [item[0] for item in history]
    assert cleaned[0] == 1 and cleaned == sorted(cleaned), history
    assert [item[1] for item in history] == [2, 3, 4]
    assert value(served, "zombie_cleaner_last_success_timestamp_seconds",
                 "zombie_cleaner_last_success_timestamp_seconds") > 0
