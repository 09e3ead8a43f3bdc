"""Guardrails for unattended runs (issue 18), for real: playbooks/site.yml on a node of its own (a PID namespace,
helpers/pidns_node.py) with host zombies, a real Prometheus server (Debian's prometheus, started here on loopback
with rule files whose alerts fire and ones that do not, then stopped), and a real HTTP receiver for Apprise's
json:// notifications (and one that is down)."""

import datetime
import http.server
import json
import os
import shutil
import socket
import subprocess
import threading
import time

import pytest

from ansible.module_utils.zombie_cleaner.controller import alerts, report
from helpers.ansible_run import node_paths
from helpers.pidns_node import PidNamespaceNode

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"),
                                reason="a node of its own needs root and unshare")

RULES = """
groups:
  - name: zc-test
    interval: 1s
    rules:
      - alert: ZCTestFiring
        expr: vector(1)
        labels: {severity: critical}
        annotations: {summary: always firing}
      - alert: ZCTestPending
        expr: vector(1)
        for: 1h
        labels: {severity: warning}
      - alert: ZCTestQuiet
        expr: vector(0) > 1
        labels: {severity: critical}
"""


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class PrometheusServer:
    """Debian's prometheus on 127.0.0.1, evaluating the rules every second; stop() ends it."""

    def __init__(self, directory, rules=RULES):
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "rules.yml").write_text(rules)
        (directory / "prometheus.yml").write_text(
            "global: {evaluation_interval: 1s, scrape_interval: 1h}\nrule_files: [rules.yml]\n")
        self.port = free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        self.log = open(directory / "prometheus.log", "w")
        self.process = subprocess.Popen(
            ["prometheus", "--config.file=%s" % (directory / "prometheus.yml"),
             "--storage.tsdb.path=%s" % (directory / "data"), "--web.listen-address=127.0.0.1:%d" % self.port],
            stdout=self.log, stderr=subprocess.STDOUT)

    def wait_for_alerts(self, names, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                found = {item["labels"]["alertname"] for item in alerts.fetch(self.url, 2)}
                if set(names) <= found:
                    return
            except alerts.Unreachable:
                pass
            assert self.process.poll() is None, "prometheus exited"
            time.sleep(0.3)
        raise AssertionError("prometheus at %s has no %s after %ss" % (self.url, names, timeout))

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory):
    if not shutil.which("prometheus"):
        pytest.skip("Debian's prometheus is not installed (scripts/test.sh installs it)")
    server = PrometheusServer(tmp_path_factory.mktemp("prometheus"))
    try:
        server.wait_for_alerts(["ZCTestFiring", "ZCTestPending"])
        yield server
    finally:
        server.stop()


@pytest.fixture
def stopped_prometheus(tmp_path):
    """A Prometheus that was up on its port and is stopped now: nothing listens there any more."""
    if not shutil.which("prometheus"):
        pytest.skip("Debian's prometheus is not installed (scripts/test.sh installs it)")
    server = PrometheusServer(tmp_path / "stopped")
    try:
        server.wait_for_alerts(["ZCTestFiring"])
    finally:
        server.stop()
    return server


class Receiver:
    """An HTTP server on loopback keeping every JSON body POSTed to it (Apprise's json:// target)."""

    def __init__(self):
        received = self.received = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                received.append({"path": self.path, "headers": dict(self.headers),
                                 "body": json.loads(self.rfile.read(length).decode("utf-8"))})
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.close()


@pytest.fixture
def node():
    made = PidNamespaceNode()
    yield made
    made.close()


def site(node, tmp_path, *extra, extra_json=None, env=None):
    """site.yml on the node: confirm_count 1 (each run confirms what it sees), host zombies cured, the pause file
    under tmp_path. (result, remediation result or None)."""
    results = tmp_path / "results"
    args = ["playbooks/site.yml", *node_paths(tmp_path), "-e", "zombie_cleaner_results_dir=%s" % results,
            "-e", "zombie_cleaner_replacement_wait=1s", "-e", "zombie_cleaner_confirm_count=1",
            "-e", "zombie_cleaner_reap_host_zombies=true", "-e", "zombie_cleaner_pause_file=%s" % (tmp_path / "pause")]
    if extra_json:
        args += ["-e", json.dumps(extra_json)]
    result = node.playbook(*args, *extra, env=env)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-3000:]
    path = results / "localhost.remediation.json"
    remediation = json.loads(path.read_text()) if path.exists() else None
    if path.exists():
        path.unlink()
    return result, remediation


def outcome_of(remediation, name):
    found = [item for item in remediation["outcomes"] if item["name"].startswith("host %s[" % name)]
    assert len(found) == 1, remediation["outcomes"]
    return found[0]


def metric(tmp_path, line):
    return line in (tmp_path / "zombie_cleaner.prom").read_text().splitlines()


def audit_lines(tmp_path):
    return [json.loads(line) for line in (tmp_path / "log" / "audit.log").read_text().splitlines()]


def window_around_now(open_now):
    """(start, end) in UTC: one hour either side of now, or an hour starting two hours from now."""
    now = datetime.datetime.now(datetime.timezone.utc)
    start, end = (now - datetime.timedelta(hours=1), now + datetime.timedelta(hours=1)) if open_now else (
        now + datetime.timedelta(hours=2), now + datetime.timedelta(hours=3))
    return start.strftime("%H:%M"), end.strftime("%H:%M")


def test_a_window_closed_now_defers_confirmed_work_scans_still_count(node, tmp_path):
    parent = node.parent("zc-window", 2)
    start, end = window_around_now(open_now=False)
    _, remediation = site(node, tmp_path, extra_json={
        "zombie_cleaner_remediation_start_time": start, "zombie_cleaner_remediation_end_time": end,
        "zombie_cleaner_remediation_time_zone": "UTC"})
    outcome = outcome_of(remediation, "zc-window")
    assert outcome["result"] == "deferred" and outcome["blocked_reason"] == "window", outcome
    assert outcome["reason"].startswith("deferred: outside the remediation window (every day %s-%s UTC; opens "
                                        % (start, end)), outcome["reason"]
    assert len(node.zombies(parent)) == 2                                       # nothing was done
    state = json.loads((tmp_path / "state" / "state.json").read_text())
    assert [entry["count"] for entry in state["host_groups"].values()] == [1]   # the scan still counted
    assert metric(tmp_path, 'zombie_cleaner_remediation_blocked{reason="window"} 1')
    assert metric(tmp_path, 'zombie_cleaner_remediation_blocked{reason="alert"} 0')
    assert any(line.get("result") == "deferred" and "outside the remediation window" in line["msg"]
               for line in audit_lines(tmp_path))
    held = report.build([report.Node("localhost", state)])["held_back"]         # the fleet report
    assert [(item["reason"], item["count"]) for item in held] == [("window", 1)]


def test_a_window_open_now_cures(node, tmp_path):
    parent = node.parent("zc-window-open", 2)
    start, end = window_around_now(open_now=True)
    _, remediation = site(node, tmp_path, extra_json={
        "zombie_cleaner_remediation_start_time": start, "zombie_cleaner_remediation_end_time": end,
        "zombie_cleaner_remediation_days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]})
    assert outcome_of(remediation, "zc-window-open")["result"] == "reaped_in_place"
    assert node.zombies(parent) == []
    assert metric(tmp_path, 'zombie_cleaner_remediation_blocked{reason="window"} 0')


def test_prometheus_answers_with_its_active_alerts_and_the_filters_apply(prometheus):
    active = alerts.fetch(prometheus.url, 5)
    states = {item["labels"]["alertname"]: item["state"] for item in active}
    assert states == {"ZCTestFiring": "firing", "ZCTestPending": "pending"}      # ZCTestQuiet never fires

    def blocking(**kwargs):
        hold = alerts.decision(prometheus.url, 5, alerts.AlertFilter(**kwargs))
        return hold and hold["alerts"]
    assert blocking(regexp="") == ["ZCTestFiring", "ZCTestPending"]
    assert blocking(regexp="", firing_only=True) == ["ZCTestFiring"]
    assert blocking(regexp="^ZCTestFiring$") == ["ZCTestPending"]
    assert blocking(regexp="^ZCTestFiring$", match_only=True) == ["ZCTestFiring"]
    assert blocking(regexp="^ZCTest") is None
    assert blocking(regexp="", matchers=['severity="critical"']) == ["ZCTestFiring"]
    assert blocking(regexp="", matchers=['severity=~"warn.*"']) == ["ZCTestPending"]
    # A URL where no alerts API answers (404) blocks too: fail closed.
    hold = alerts.decision(prometheus.url + "/no-such-prefix", 5, alerts.AlertFilter())
    assert hold["reason"] == "prometheus_unreachable" and "HTTP 404" in hold["detail"], hold


def test_a_firing_alert_blocks_every_node_and_names_the_alert(node, tmp_path, prometheus):
    parent = node.parent("zc-alert", 2)
    _, remediation = site(node, tmp_path, extra_json={"zombie_cleaner_prometheus_url": prometheus.url,
                                                      "zombie_cleaner_alert_firing_only": True})
    outcome = outcome_of(remediation, "zc-alert")
    assert outcome["result"] == "deferred" and outcome["blocked_reason"] == "alert", outcome
    assert "1 alert active in Prometheus: ZCTestFiring (firing, severity=critical)" in outcome["reason"]
    assert len(node.zombies(parent)) == 2
    assert metric(tmp_path, 'zombie_cleaner_remediation_blocked{reason="alert"} 1')


def test_a_filtered_alert_does_not_block(node, tmp_path, prometheus):
    parent = node.parent("zc-filtered", 2)
    _, remediation = site(node, tmp_path, extra_json={"zombie_cleaner_prometheus_url": prometheus.url,
                                                      "zombie_cleaner_alert_filter_regexp": "^(ZCTest.*|Zombie.*)$"})
    assert outcome_of(remediation, "zc-filtered")["result"] == "reaped_in_place"
    assert node.zombies(parent) == []
    assert metric(tmp_path, 'zombie_cleaner_remediation_blocked{reason="alert"} 0')


def test_prometheus_down_blocks_and_says_so(node, tmp_path, stopped_prometheus):
    parent = node.parent("zc-prom-down", 2)
    _, remediation = site(node, tmp_path, extra_json={"zombie_cleaner_prometheus_url": stopped_prometheus.url,
                                                      "zombie_cleaner_prometheus_timeout": "3s"})
    outcome = outcome_of(remediation, "zc-prom-down")
    assert outcome["result"] == "deferred" and outcome["blocked_reason"] == "prometheus_unreachable", outcome
    assert "Prometheus at %s not reached within 3s" % stopped_prometheus.url in outcome["reason"]
    assert "fail closed" in outcome["reason"]
    assert len(node.zombies(parent)) == 2
    assert metric(tmp_path, 'zombie_cleaner_remediation_blocked{reason="prometheus_unreachable"} 1')


def test_the_brake_stops_the_fourth_cure_of_a_recurring_workload_until_reset(node, tmp_path):
    parent = node.parent("zc-loop", 2)
    for run in range(3):
        _, remediation = site(node, tmp_path)
        assert outcome_of(remediation, "zc-loop")["result"] == "reaped_in_place", run
        assert node.zombies(parent) == []
        assert len(node.more(parent, 2)) == 2                      # it makes zombies again right after the cure
    _, remediation = site(node, tmp_path)
    outcome = outcome_of(remediation, "zc-loop")
    assert outcome["result"] == "recurring" and outcome["blocked_reason"] == "recurring", outcome
    assert outcome["recurring"]["cures"] == 3 and outcome["recurring"]["newly"], outcome
    assert outcome["reason"].startswith("recurring: host/zc-loop was cured 3 times within 24h")
    assert len(node.zombies(parent)) == 2                          # the fourth cure did not happen
    assert metric(tmp_path, "zombie_cleaner_recurring_workloads 1")
    assert metric(tmp_path, 'zombie_cleaner_remediation_blocked{reason="recurring"} 1')
    # An explicit reset lets it be cured again.
    _, remediation = site(node, tmp_path, extra_json={"zombie_cleaner_cure_history_reset": ["host/zc-loop"]})
    assert outcome_of(remediation, "zc-loop")["result"] == "reaped_in_place"
    assert node.zombies(parent) == []


def test_the_fleet_budget_defers_the_rest_most_urgent_first(node, tmp_path):
    few, most, middle = node.parent("zc-few", 1), node.parent("zc-most", 4), node.parent("zc-middle", 2)
    result, remediation = site(node, tmp_path, extra_json={"zombie_cleaner_max_remediations_per_fleet_run": 2})
    assert outcome_of(remediation, "zc-most")["result"] == "reaped_in_place"
    assert outcome_of(remediation, "zc-middle")["result"] == "reaped_in_place"
    deferred = outcome_of(remediation, "zc-few")
    assert deferred["result"] == "deferred" and deferred["blocked_reason"] == "budget", deferred
    assert "max_remediations_per_fleet_run=2" in deferred["reason"] and "number 3 of 3" in deferred["reason"]
    assert node.zombies(most) == [] and node.zombies(middle) == [] and len(node.zombies(few)) == 1
    assert "fleet budget: 2 of 2 remediations this run, 1 deferred" in result.stdout
    assert metric(tmp_path, 'zombie_cleaner_remediation_blocked{reason="budget"} 1')


def test_the_pause_file_stops_remediation_on_the_node_and_says_why(node, tmp_path):
    parent = node.parent("zc-paused", 2)
    (tmp_path / "pause").write_text("INC-4711 looking at the payments pods\n")
    _, remediation = site(node, tmp_path)
    outcome = outcome_of(remediation, "zc-paused")
    assert outcome["result"] == "deferred" and outcome["blocked_reason"] == "paused", outcome
    assert outcome["reason"].startswith("paused: %s exists (since " % (tmp_path / "pause"))
    assert "INC-4711 looking at the payments pods; remove the file" in outcome["reason"]
    assert len(node.zombies(parent)) == 2
    assert metric(tmp_path, 'zombie_cleaner_remediation_blocked{reason="paused"} 1')
    (tmp_path / "pause").unlink()
    _, remediation = site(node, tmp_path)
    assert outcome_of(remediation, "zc-paused")["result"] == "reaped_in_place"


def test_a_notification_is_received_with_the_run_and_its_items(node, tmp_path, receiver, stopped_prometheus):
    node.parent("zc-notify", 2)
    result, _ = site(node, tmp_path, extra_json={
        "zombie_cleaner_prometheus_url": stopped_prometheus.url, "zombie_cleaner_prometheus_timeout": "2s",
        "zombie_cleaner_notify_urls": ["json://127.0.0.1:%d/hook" % receiver.port]})
    assert len(receiver.received) == 1, result.stdout[-2000:]          # once per run
    sent = receiver.received[0]
    assert sent["path"] == "/hook"
    body = sent["body"]
    assert body["type"] == "warning" and body["version"] == "1.0"
    assert body["title"] == "zombie-cleaner: 1 held back on 1 node"
    message = body["message"]
    assert message.startswith("zombie-cleaner run: 1 nodes (1 scanned, 0 unreachable); 2 zombies, 0 containers "
                              "confirmed; 0 cured, 0 failed, 0 recurring, 1 held back, 0 unreachable.")
    assert "Held back (1):\n- host localhost (node " in message
    assert "host zc-notify[" in message and "workload host/zc-notify: [prometheus_unreachable] deferred: Prometheus at" \
        in message
    assert "zombie-cleaner notification sent (prometheus_unreachable) to 1 of 1 URLs" in result.stdout


def test_a_receiver_that_is_down_leaves_the_run_successful_with_a_warning(node, tmp_path, stopped_prometheus):
    node.parent("zc-notify-down", 2)
    port = free_port()                                                  # nothing listens there
    result, _ = site(node, tmp_path, extra_json={
        "zombie_cleaner_prometheus_url": stopped_prometheus.url, "zombie_cleaner_prometheus_timeout": "2s",
        "zombie_cleaner_notify_urls": ["json://127.0.0.1:%d/hook" % port]})
    assert result.returncode == 0
    output = " ".join((result.stdout + result.stderr).split())
    assert "zombie-cleaner: notification not delivered to notify_urls[0] json://127.0.0.1:%d/hook" % port in output
    assert "the run's result stands" in output


def test_bad_guardrail_settings_fail_on_the_controller_before_any_node_is_touched(node, tmp_path):
    parent = node.parent("zc-badcfg", 2)
    result = node.playbook("playbooks/site.yml", *node_paths(tmp_path), "-e", "zombie_cleaner_reap_host_zombies=true",
                           "-e", json.dumps({"zombie_cleaner_remediation_start_time": "25:00",
                                             "zombie_cleaner_remediation_time_zone": "Mars/Olympus",
                                             "zombie_cleaner_prometheus_url": "ftp://prometheus:9090",
                                             "zombie_cleaner_max_cures_per_workload": -1}))
    assert result.returncode != 0
    output = " ".join(result.stdout.split())
    assert "remediation_start_time=25:00 is invalid: not a time of day: expected 00:00 to 23:59" in output
    assert "remediation_time_zone=Mars/Olympus is invalid: unknown time zone" in output
    assert "prometheus_url=ftp://prometheus:9090 is invalid: expected an http:// or https:// URL" in output
    assert "max_cures_per_workload=-1 is invalid: expected a whole number of at least 0" in output
    assert not (tmp_path / "state" / "state.json").exists() and len(node.zombies(parent)) == 2

