"""playbooks/report.yml over a small fleet: a real node with real containers, a CRI-O fixture node
(CRI-O cannot run here) and an unreachable node; the HTML checked in headless Chromium."""

import json
import os
import re

import pytest

from helpers import browser, containers
from helpers.ansible_run import BACK_TO_BACK, playbook
from helpers.node_exporter import free_port
from helpers.procfixture import FakeNode
from helpers.zombies import start_time, wait_for, zombie_children

CRIO_ID = "e" * 64
UID = "0b1c2d3e-0000-1111-2222-333344445555"


def crio_node(root):
    """A CRI-O node: conmon -> nginx (PID 1 of the container, never reaps) -> 2 zombies; pids 250/256."""
    node = FakeNode(root)
    node.add(1, 0, "systemd")
    node.add(400, 1, "conmon", cmdline=["/usr/bin/conmon", "-c", CRIO_ID, "-n", "k8s_api_billing-7f9c_pay_%s_0" % UID])
    cgroup = "/kubepods.slice/kubepods-pod%s.slice/crio-%s.scope" % (UID.replace("-", "_"), CRIO_ID)
    node.add(410, 400, "nginx", cgroup=cgroup)
    node.add(411, 410, "sh", state="Z")
    node.add(412, 410, "sh", state="Z")
    node.pids_cgroup(cgroup, 250, 256)
    node.conmon_userdata(node.crio, CRIO_ID, conmon_pid=400, init_pid=410)   # CRI-O's own record of its conmon
    return node


def inventory(tmp_path, crio):
    local = {"ansible_connection": "local", "ansible_python_interpreter": "{{ ansible_playbook_python }}",
             "ansible_become": False}
    hosts = {}
    for name in ("node1", "node2"):
        hosts[name] = dict(local, zombie_cleaner_state_path=str(tmp_path / name / "state.json"),
                           zombie_cleaner_audit_log_path=str(tmp_path / name / "audit.log"),
                           zombie_cleaner_metrics_textfile_dir="")
    hosts["node2"].update(zombie_cleaner_proc_root=str(crio.proc), zombie_cleaner_cgroup_root=str(crio.cgroup_root),
                          zombie_cleaner_remediate_enabled=False, **{
                              "zombie_cleaner_%s" % key: value for key, value in crio.runtime_files().items()})
    # Nothing listens on this port: the node is unreachable, as a powered-off one would be.
    hosts["node3"] = {"ansible_connection": "ssh", "ansible_host": "127.0.0.1", "ansible_port": free_port(),
                      "ansible_ssh_common_args": "-o ConnectTimeout=3 -o StrictHostKeyChecking=no "
                                                 "-o UserKnownHostsFile=/dev/null"}
    path = tmp_path / "inventory.json"
    path.write_text(json.dumps({"all": {"hosts": hosts}}))
    return str(path)


@pytest.fixture(scope="module")
def chromium():
    if browser.BINARY is None:
        if os.environ.get("ZC_REQUIRE_RUNTIMES") == "1":
            pytest.fail("chromium is not installed")
        pytest.skip("chromium is not installed")


def test_fleet_report_shows_nodes_containers_offenders_and_unreachable(runtimes, chromium, tmp_path, cleanup):
    # Makes 3 zombies after every start, and its seccomp profile rules out reaping in place: each cure is a
    # restart followed by a new confirmation, a repeat offender.
    offender = containers.DockerContainer(command=containers.NO_WAIT_ZOMBIES_COMMAND, extra=[
        "--pids-limit", "12", "--security-opt", "seccomp=%s" % containers.no_wait4_seccomp_profile(tmp_path)])
    cleanup(offender)
    wait_for(lambda: len(zombie_children(offender.init_pid)) == 3, "3 zombies in the offender")
    # Cured once by reaping in place: never restarted, never back.
    reapable = containers.DockerContainer(zombies=2)
    cleanup(reapable)
    reapable_init = (reapable.init_pid, start_time(reapable.init_pid))
    protected = containers.DockerContainer(zombies=1, labels={"io.kubernetes.pod.name": "exporter-x",
                                                               "io.kubernetes.pod.namespace": "monitoring"})
    cleanup(protected)
    crio = crio_node(tmp_path / "crio")
    hosts = inventory(tmp_path, crio)
    common = ["-i", hosts, *BACK_TO_BACK, "-e", "zombie_cleaner_confirm_count=2", "-e", "zombie_cleaner_container_timeout=3s",
              "-e", "zombie_cleaner_replacement_wait=1s"]
    for _ in range(4):
        run = playbook("playbooks/site.yml", *common, check=False)
        assert "node3" in run.stdout and "UNREACHABLE" in run.stdout        # reported, the rest go on
        assert re.search(r"^node1\s+: ok=[1-9]", run.stdout, re.M), run.stdout[-3000:]
    report_dir = tmp_path / "report"
    result = playbook("playbooks/report.yml", "-i", hosts, "-e", "zombie_cleaner_report_dir=%s" % report_dir)
    assert "3 nodes (2 reachable, 1 unreachable)" in result.stdout

    markdown = (report_dir / "report.md").read_text()
    html = (report_dir / "report.html").read_text()
    state1 = json.loads((tmp_path / "node1" / "state.json").read_text())
    cleaned = state1["counters"]["containers_cleaned_total"]
    assert cleaned >= 3 and state1["counters"]["containers_reaped_in_place_total"] == 1
    headline = re.search(r"\*\*(3 nodes .*)\*\*", markdown).group(1)
    assert "%d remediated (1 reaped in place without a restart)" % cleaned in headline
    assert "0 failed remediations" in headline
    assert (reapable.inspect()["State"]["Pid"], start_time(reapable.init_pid)) == reapable_init
    assert zombie_children(reapable.init_pid) == []
    assert "1 protected" in headline

    # Self-contained: no scripts, stylesheets, images or fonts fetched from anywhere.
    assert not re.search(r"<(script|link|img|iframe)\b|url\(|@import", html)
    assert "<svg" in html and "<polyline" in html

    url = (report_dir / "report.html").as_uri()
    dom = browser.dump_dom(url)
    assert headline in dom                                            # the Markdown holds the same numbers
    nodes_table = dom[dom.index('id="nodes"'):]
    for host in ("node1", "node2", "node3"):
        assert host in nodes_table
    assert "unreachable" in nodes_table[nodes_table.index("node3"):]
    containers_table = dom[dom.index('id="containers"'):]
    first_row = containers_table[containers_table.index("<td>", containers_table.index("</tr>")):]
    # The CRI-O container at 250/256 pids is the closest to failing forks: first row, for the right node.
    assert first_row.index("node2") < first_row.index("pay/billing-7f9c/api") < first_row.index("</tr>")
    assert "250/256" in containers_table and "98%" in containers_table
    assert reapable.name not in containers_table        # reaped: no zombies left to show
    assert "monitoring/exporter-x/" in containers_table
    advice = dom[dom.index("Repeat offenders"):]
    assert offender.name in advice and "docker run --init" in advice and "sleep" in advice
    assert re.search(r"cured [2-9] times on node1, zombies confirmed again on node1", advice)
    assert "pay/billing-7f9c/api" in markdown and offender.name in markdown

    png = browser.screenshot(url, str(tmp_path / "report.png"))
    width, height, distinct = browser.png_summary(png)
    assert (width, height) == (1280, 1800) and distinct > 20, "the screenshot looks blank"
    if os.environ.get("ZC_KEEP_REPORT"):
        import shutil
        shutil.copy(png, os.environ["ZC_KEEP_REPORT"])
