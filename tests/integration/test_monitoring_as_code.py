"""Alert rules and the Grafana dashboard: valid for promtool, and only metrics the job really exports."""

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from ansible.module_utils.zombie_cleaner.record import metrics

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "monitoring" / "prometheus" / "zombie-cleaner.rules.yml"
RULES_TEST = ROOT / "monitoring" / "prometheus" / "zombie-cleaner.rules.test.yml"
DASHBOARD = ROOT / "monitoring" / "grafana" / "zombie-cleaner-dashboard.json"
# Grafana's variables, as Grafana would fill them in.
GRAFANA_VARIABLES = {"$instance": ".*", "$__range": "1h", "$__rate_interval": "5m", "${datasource}": "prom"}


@pytest.fixture(scope="module")
def promtool():
    found = shutil.which("promtool")
    if found is None:
        if os.environ.get("ZC_REQUIRE_RUNTIMES") == "1":
            pytest.fail("promtool (Debian package prometheus) is not installed")
        pytest.skip("promtool is not installed")
    return found


def exported_names():
    """Every sample name the textfile can carry."""
    state = {"last_scan": {"containers": [{"container_id": "x", "zombies": 1, "pids_current": 1, "pids_max": 2,
                                           "pids_pressure": 0.5}],
                           "node_pids": {"tasks": 100, "pid_max": 4194304, "threads_max": 1000, "pressure": 0.1}}}
    return {sample.name for family in text_string_to_metric_families(metrics.render(state))
            for sample in family.samples}


def dashboard_expressions():
    dashboard = json.loads(DASHBOARD.read_text())
    expressions = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            expressions.append(re.sub(r"^label_values\((\w+),.*\)$", r"\1", variable["query"]["query"]))
    return expressions


def test_rules_pass_promtool_check_and_their_unit_tests(promtool):
    check = subprocess.run([promtool, "check", "rules", str(RULES)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    test = subprocess.run([promtool, "test", "rules", RULES_TEST.name], cwd=RULES_TEST.parent,
                          capture_output=True, text=True)
    assert test.returncode == 0 and "SUCCESS" in test.stdout, test.stdout + test.stderr
    alerts = {rule["alert"] for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]}
    assert alerts == {"ZombieProcessesRising", "ZombieContainerPidsPressureHigh", "ZombieNodePidsPressureHigh",
                      "ZombieCleanerLeftAParentAttached", "ZombieCleanerCleanupFailures", "ZombieCleanerNotRunning",
                      "ZombieCleanerRemediationBlocked"}


def test_rule_unit_tests_can_fail(promtool, tmp_path):
    # The same unit tests against a rules file whose rising threshold was raised out of reach must fail.
    shutil.copy(RULES_TEST, tmp_path / RULES_TEST.name)
    (tmp_path / RULES.name).write_text(RULES.read_text().replace("offset 1h) > 10", "offset 1h) > 1000"))
    test = subprocess.run([promtool, "test", "rules", RULES_TEST.name], cwd=tmp_path, capture_output=True, text=True)
    assert test.returncode != 0 and "ZombieProcessesRising" in test.stdout + test.stderr


def test_every_dashboard_query_is_valid_promql(promtool, tmp_path):
    expressions = dashboard_expressions()
    assert len(expressions) >= 8
    rules = {"groups": [{"name": "dashboard", "rules": []}]}
    for index, expression in enumerate(expressions):
        for variable, value in GRAFANA_VARIABLES.items():
            expression = expression.replace(variable, value)
        rules["groups"][0]["rules"].append({"record": "dashboard:query_%d" % index, "expr": expression})
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump(rules))
    check = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr


def test_rules_and_dashboard_use_only_exported_metrics():
    exported = exported_names()
    used = set(re.findall(r"\bzombie_cleaner_\w+", RULES.read_text() + "\n".join(dashboard_expressions())))
    assert used and used <= exported, "not exported: %s" % sorted(used - exported)
    design = {"zombie_cleaner_zombie_processes_found", "zombie_cleaner_containers_cleaned_total",
              "zombie_cleaner_cleanup_failures_total", "zombie_cleaner_check_duration_seconds_bucket"}
    assert design <= used             # the design's trend, success rate and p95 queries are there
