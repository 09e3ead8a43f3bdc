"""The node's own PID budget: tasks against kernel.pid_max and kernel.threads-max (issue 16, item 6)."""

from prometheus_client.parser import text_string_to_metric_families

from ansible.module_utils.zombie_cleaner.controller import report
from ansible.module_utils.zombie_cleaner.observe import procfs, scan
from ansible.module_utils.zombie_cleaner.record import metrics
from helpers.procfixture import FakeNode


def node_with_budget(tmp_path, pid_max="4194304", threads_max="200"):
    node = FakeNode(tmp_path)
    node.add(1, 0, "systemd")
    node.add(10, 1, "java", threads=120)          # every thread takes a PID
    node.add(11, 10, "sh", state="Z")
    for name, value in (("pid_max", pid_max), ("threads-max", threads_max)):
        if value is not None:
            (node.proc / "sys" / "kernel" / name).write_text(value + "\n")
    return node


def test_tasks_count_threads_against_the_smaller_limit(tmp_path):
    node = node_with_budget(tmp_path)
    budget = procfs.node_pid_budget(str(node.proc), procfs.scan(str(node.proc)))
    assert budget == {"tasks": 122, "pid_max": 4194304, "threads_max": 200, "pressure": 0.61}


def test_unreadable_limits_give_no_pressure(tmp_path):
    node = node_with_budget(tmp_path, pid_max=None, threads_max=None)
    budget = procfs.node_pid_budget(str(node.proc), procfs.scan(str(node.proc)))
    assert budget["tasks"] == 122 and budget["pressure"] is None


def test_scan_reports_exports_and_the_fleet_report_shows_it(tmp_path):
    node = node_with_budget(tmp_path)
    result = scan.run_scan(scan.ScanOptions(proc_root=str(node.proc), state_path=str(tmp_path / "s" / "state.json"),
                                            runtime_files=node.runtime_files(), metrics_textfile_dir=str(tmp_path)))
    assert result["node_pids"]["pressure"] == 0.61
    assert result["report"][-1] == "node: 122 tasks (pid_max 4194304, threads-max 200), 61% of the PID budget"
    families = {family.name: family for family in text_string_to_metric_families(
        (tmp_path / metrics.TEXTFILE_NAME).read_text())}
    assert families["zombie_cleaner_node_pids_pressure"].samples[0].value == 0.61
    assert families["zombie_cleaner_node_tasks"].samples[0].value == 122
    state = __import__("json").loads((tmp_path / "s" / "state.json").read_text())
    model = report.build([report.Node("node1", state=state)])
    assert model["nodes"][0]["node_pids_pressure"] == 0.61
    assert "| 61% |" in report.markdown(model)
