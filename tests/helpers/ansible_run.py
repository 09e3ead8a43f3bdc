"""ansible-playbook as an operator runs it: from the repository root."""

import json
import os
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def playbook(*args, env=None, check=True):
    """Run ansible-playbook from the repository root (where ansible.cfg lives)."""
    full_env = dict(os.environ, ANSIBLE_FORCE_COLOR="0", ANSIBLE_NOCOLOR="1")
    full_env.update(env or {})
    result = subprocess.run(["ansible-playbook"] + list(args), cwd=ROOT, env=full_env,
                            capture_output=True, text=True, timeout=300)
    if check and result.returncode != 0:
        raise AssertionError("ansible-playbook %s failed (%d):\n%s\n%s" % (
            " ".join(args), result.returncode, result.stdout[-4000:], result.stderr[-4000:]))
    return result


# Tests run the schedule back to back, a few seconds apart: check_interval says so, so that confirm_count runs
# also span the (confirm_count - 1) x check_interval that confirmation needs (see README, confirmation).
BACK_TO_BACK = ["-e", "zombie_cleaner_check_interval=1s"]


def node_paths(tmp_path):
    """-e arguments that keep a test's node-side files (state, audit log, metrics) under tmp_path, for a schedule
    run back to back."""
    return BACK_TO_BACK + ["-e", "zombie_cleaner_state_path=%s" % (tmp_path / "state" / "state.json"),
            "-e", "zombie_cleaner_audit_log_path=%s" % (tmp_path / "log" / "audit.log"),
            "-e", "zombie_cleaner_metrics_textfile_dir=%s" % tmp_path]


def site(tmp_path, *extra, env=None, check=True):
    """playbooks/site.yml on localhost, node files and results under tmp_path: (result, results dir)."""
    results = tmp_path / "results"
    result = playbook("playbooks/site.yml", *node_paths(tmp_path), "-e", "zombie_cleaner_results_dir=%s" % results,
                      "-e", "zombie_cleaner_replacement_wait=1s", *extra, env=env, check=check)
    return result, results


def outcomes_by_id(results):
    """{container_id: outcome} of the remediation kept in the results dir (empty if none ran)."""
    path = results / "localhost.remediation.json"
    if not path.exists():
        return {}
    return {item["container_id"]: item for item in json.loads(path.read_text())["outcomes"]}
