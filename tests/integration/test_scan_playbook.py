"""playbooks/scan.yml against localhost, three times, with real containers."""

import json

from helpers import containers
from helpers.ansible_run import node_paths, playbook


def run_scan(tmp_path, *extra, env=None):
    state = tmp_path / "state" / "state.json"
    results = tmp_path / "results"
    playbook("playbooks/scan.yml", *node_paths(tmp_path), "-e", "zombie_cleaner_results_dir=%s" % results,
             *extra, env=env)
    return json.loads((results / "localhost.scan.json").read_text()), state


def test_three_runs_confirm_protect_and_check_mode_writes_nothing(runtimes, tmp_path, cleanup):
    app = containers.CtrContainer(zombies=2, annotations={
        "io.kubernetes.cri.sandbox-name": "shop-web", "io.kubernetes.cri.sandbox-namespace": "shop",
        "io.kubernetes.cri.container-name": "web"}, namespace=containers.CRI_NAMESPACE)
    cleanup(app)
    monitored = containers.DockerContainer(zombies=3, labels={
        "io.kubernetes.pod.name": "node-exporter-x", "io.kubernetes.pod.namespace": "monitoring"})
    cleanup(monitored)
    plain = containers.DockerContainer(zombies=1)
    cleanup(plain)
    (tmp_path / "results").mkdir()

    seen = []
    for _ in range(2):
        result, state = run_scan(tmp_path)
        seen.append({c["container_id"]: c for c in result["containers"]})
    assert [s[app.id]["sightings"] for s in seen] == [1, 2]
    assert not seen[-1][app.id]["confirmed"]

    # Check mode (and CONFIRM_COUNT from the environment) must leave the state byte-identical.
    before = state.read_bytes()
    result, _ = run_scan(tmp_path, "--check", "--diff")
    assert state.read_bytes() == before
    assert {c["container_id"]: c for c in result["containers"]}[app.id]["confirmed"] is True

    result, _ = run_scan(tmp_path)
    by_id = {c["container_id"]: c for c in result["containers"]}
    assert by_id[app.id]["confirmed"] and by_id[app.id]["candidate"]
    assert (by_id[app.id]["namespace"], by_id[app.id]["pod"]) == ("shop", "shop-web")
    assert by_id[monitored.id]["confirmed"] and by_id[monitored.id]["protected"]
    assert not by_id[monitored.id]["candidate"]
    assert by_id[plain.id]["candidate"]
    assert set(result["candidates"]) >= {app.id, plain.id}
    assert monitored.id not in result["candidates"]
    saved = json.loads(state.read_text())
    assert saved["containers"][app.id]["count"] == 3 and saved["version"] == 1


def test_environment_and_original_yaml_override_role_defaults(runtimes, tmp_path, cleanup):
    plain = containers.DockerContainer(zombies=1)
    cleanup(plain)
    (tmp_path / "results").mkdir()
    cleaner = tmp_path / "cleaner.yml"
    cleaner.write_text("cleaner:\n  confirm_count: 2\n  whitelist_patterns: ['^%s$']\n" % plain.name)
    result, _ = run_scan(tmp_path, "-e", "@%s" % cleaner)
    record = {c["container_id"]: c for c in result["containers"]}[plain.id]
    assert record["protected"] is True and record["sightings"] == 1
    # CONFIRM_COUNT=1 beats cleaner.confirm_count=2: confirmed at the second sight already counted.
    result, _ = run_scan(tmp_path, "-e", "@%s" % cleaner, env={"CONFIRM_COUNT": "1"})
    record = {c["container_id"]: c for c in result["containers"]}[plain.id]
    assert record["confirmed"] is True and record["sightings"] == 2


def test_bad_settings_fail_with_a_message_naming_them(tmp_path):
    result = playbook("playbooks/scan.yml", "-e", "zombie_cleaner_state_path=%s" % (tmp_path / "s.json"),
                      env={"CONFIRM_COUNT": "three"}, check=False)
    assert result.returncode != 0
    assert "confirm_count=three is invalid: expected a whole number of at least 1" in result.stdout
    assert not (tmp_path / "s.json").exists()
    result = playbook("playbooks/scan.yml", "-e", "zombie_cleaner_state_path=%s" % (tmp_path / "s.json"),
                      "-e", '{"zombie_cleaner_whitelist_patterns": ["^ok$", "[unclosed"]}', check=False)
    assert result.returncode != 0
    assert "whitelist_patterns='[unclosed' is invalid: not a valid regular expression" in result.stdout
    assert not (tmp_path / "s.json").exists()


def test_every_settings_problem_is_named_and_no_node_is_touched(tmp_path):
    cleaner = tmp_path / "cleaner.yml"
    cleaner.write_text("cleaner:\n  confirm_cuont: 2\n  log_level: loud\n  container_timeout: soon\n")
    results = tmp_path / "results"
    result = playbook("playbooks/site.yml", *node_paths(tmp_path), "-e", "@%s" % cleaner,
                      "-e", "zombie_cleaner_results_dir=%s" % results, check=False)
    assert result.returncode != 0
    # All three in one message, checked on the controller: no state, audit log or result anywhere.
    assert "cleaner: has unknown keys ['confirm_cuont']" in result.stdout
    assert "log_level must be one of debug, info, warning, error (got loud)" in result.stdout
    assert "container_timeout=soon is invalid: expected a duration such as 30s, 5m or 1h" in result.stdout
    assert not (tmp_path / "state").exists() and not results.exists()
    assert not [path for path in tmp_path.rglob("*") if path.is_file() and path != cleaner]



def test_role_argument_specs_are_checked_inside_the_scan_task_before_the_node_is_touched(tmp_path):
    state = tmp_path / "s.json"
    result = playbook("playbooks/scan.yml", "-e", "zombie_cleaner_state_path=%s" % state,
                      "-e", "zombie_cleaner_audit_log_backups=many", "-e", "zombie_cleaner_reap_host_zombies=maybe",
                      check=False)
    assert result.returncode != 0
    # What Ansible's own validation would say, both options named, from the scan task: no round of its own.
    assert "Validation of arguments failed" in result.stdout
    assert "zombie_cleaner_audit_log_backups" in result.stdout and "zombie_cleaner_reap_host_zombies" in result.stdout
    assert "Validating arguments against arg spec" not in result.stdout
    assert not state.exists()
    # Valid settings: the scan runs, still without a validation task of its own.
    result = playbook("playbooks/scan.yml", "-e", "zombie_cleaner_state_path=%s" % state)
    assert "Validating arguments against arg spec" not in result.stdout and state.exists()
