"""Rolling batches: serial, max_fail_percentage and -l limits over several inventory hosts."""

import json
import re

from helpers.ansible_run import playbook


def inventory(tmp_path):
    hosts = {}
    for name in ("node1", "node2", "node3"):
        hosts[name] = {"ansible_connection": "local", "ansible_python_interpreter": "{{ ansible_playbook_python }}",
                       "ansible_become": False, "zombie_cleaner_state_path": str(tmp_path / name / "state.json"),
                       "zombie_cleaner_audit_log_path": str(tmp_path / name / "audit.log"),
                       "zombie_cleaner_metrics_textfile_dir": str(tmp_path)}
    # node2 fails: its state directory cannot be created (under /proc).
    hosts["node2"]["zombie_cleaner_state_path"] = "/proc/zombie-cleaner/state.json"
    path = tmp_path / "inventory.json"
    path.write_text(json.dumps({"all": {"hosts": hosts}}))
    return path


def run(tmp_path, *extra):
    results = tmp_path / "results"
    results.mkdir(exist_ok=True)
    for old in results.iterdir():
        old.unlink()
    result = playbook("playbooks/remediate.yml", "-i", str(inventory(tmp_path)),
                      "-e", "zombie_cleaner_results_dir=%s" % results, *extra, env={"DRY_RUN": "true"}, check=False)
    return result, sorted(path.name.split(".")[0] for path in results.glob("*.scan.json"))


def test_failure_budget_stops_the_rollout_after_the_failed_node(tmp_path):
    result, scanned = run(tmp_path, "-e", "zombie_cleaner_serial=2", "-e", "zombie_cleaner_max_fail_percentage=0")
    # The budget is checked after every task: the rollout stops mid-batch, node3 is never touched.
    assert (tmp_path / "node1" / "state.json").exists()
    assert not (tmp_path / "node3").exists() and "node3" not in scanned
    assert "fatal: [node2]" in result.stdout and result.returncode != 0
    assert not re.search(r"^node3\s+: ok=[1-9]", result.stdout, re.M)


def test_nodes_after_a_failure_go_on_within_the_budget(tmp_path):
    # Batch 1 (node1, node2) fails 50%: within a budget of 50, so batch 2 (node3) runs.
    # (Ansible always stops when every host of a batch fails, whatever the budget.)
    result, scanned = run(tmp_path, "-e", "zombie_cleaner_serial=2", "-e", "zombie_cleaner_max_fail_percentage=50")
    assert scanned == ["node1", "node3"]
    batches = re.findall(r"^PLAY \[Remediate", result.stdout, re.M)
    assert len(batches) == 2
    assert result.stdout.index("[node2]") < result.stdout.index("[node3]")


def test_limit_touches_only_the_named_host(tmp_path):
    result, scanned = run(tmp_path, "-l", "node3")
    assert result.returncode == 0 and scanned == ["node3"]
    assert not (tmp_path / "node1").exists()
