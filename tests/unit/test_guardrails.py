"""Guardrails (issue 18) as pure functions: windows, alert filters, the fleet budget, the cure-loop brake, the pause
file, the settings check, the blocked-reason metrics and the notification's content."""

import datetime
import json
import os

import pytest

from ansible.module_utils.zombie_cleaner import config
from ansible.module_utils.zombie_cleaner.controller import alerts, holds, notify, windows
from ansible.module_utils.zombie_cleaner.cure import guardrails, remediate
from ansible.module_utils.zombie_cleaner.record import metrics, state

BERLIN = datetime.timezone(datetime.timedelta(hours=1))        # Europe/Berlin in winter


def at(text, zone=datetime.timezone.utc):
    """Epoch seconds of 'YYYY-MM-DD HH:MM' in zone."""
    return datetime.datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=zone).timestamp()


# 2026-11-23 is a Monday.
@pytest.mark.parametrize("days, start, end, when, is_open", [
    (windows.DAYS, "00:00", "24:00", "2026-11-25 13:00", True),                 # the default: always
    (["mon", "tue", "wed", "thu", "fri"], "22:00", "06:00", "2026-11-27 23:30", True),    # Friday night
    (["mon", "tue", "wed", "thu", "fri"], "22:00", "06:00", "2026-11-28 03:00", True),    # ... still Friday's window
    (["mon", "tue", "wed", "thu", "fri"], "22:00", "06:00", "2026-11-23 03:00", False),   # Monday 03:00 is Sunday's
    (["mon", "tue", "wed", "thu", "fri"], "22:00", "06:00", "2026-11-25 12:00", False),   # midday
    (["sat", "sun"], "09:00", "17:00", "2026-11-28 16:59", True),
    (["sat", "sun"], "09:00", "17:00", "2026-11-28 17:00", False),              # the end is not in the window
    (["mo", "Tuesday"], "00:00", "24:00", "2026-11-24 23:59", True),
])
def test_window_open_or_closed(days, start, end, when, is_open):
    assert windows.Window(days, start, end, "UTC").is_open(at(when)) is is_open


def test_a_closed_window_says_when_it_opens_in_its_own_zone():
    window = windows.Window(["mon", "tue", "wed", "thu", "fri"], "22:00", "06:00", "Europe/Berlin")
    hold = windows.decision(window, at("2026-11-25 12:00", BERLIN))
    assert hold == {"reason": "window", "detail": "deferred: outside the remediation window (mon-fri 22:00-06:00 "
                                                  "Europe/Berlin; opens Wed 2026-11-25 22:00 CET, in 10h00m)"}
    assert windows.decision(window, at("2026-11-25 22:00", BERLIN)) is None
    assert windows.decision(windows.Window(), at("2026-11-25 12:00")) is None


@pytest.mark.parametrize("settings, message", [
    ({"remediation_start_time": "25:00"}, "remediation_start_time=25:00 is invalid: not a time of day"),
    ({"remediation_end_time": "6pm"}, "remediation_end_time=6pm is invalid: expected a time of day such as 22:00"),
    ({"remediation_start_time": "06:00", "remediation_end_time": "06:00"}, "equals remediation_start_time"),
    ({"remediation_time_zone": "Mars/Olympus"}, "remediation_time_zone=Mars/Olympus is invalid: unknown time zone"),
    ({"remediation_days": ["mon", "funday"]}, "remediation_days=funday is invalid: not a day"),
    ({"remediation_days": []}, "remediation_days=[] is invalid: expected a non-empty list of days"),
    ({"prometheus_url": "ftp://prom:9090"}, "prometheus_url=ftp://prom:9090 is invalid: expected an http:// or https://"),
    ({"prometheus_url": "http://user:secret@prom:9090/x", "prometheus_timeout": "0s"}, "prometheus_timeout=0s"),
    ({"alert_filter_regexp": "(", }, "alert_filter_regexp=( is invalid: not a valid regular expression"),
    ({"alert_filter_regexp": "", "alert_filter_match_only": True}, "alert_filter_match_only=True is invalid: needs"),
    ({"alert_label_matchers": ["severity critical"]}, "alert_label_matchers=severity critical is invalid"),
    ({"max_remediations_per_fleet_run": -1}, "max_remediations_per_fleet_run=-1 is invalid: expected a whole number"),
    ({"max_cures_per_workload": -2}, "max_cures_per_workload=-2 is invalid"),
    ({"cure_window": "forever"}, "cure_window=forever is invalid"),
    ({"notify_urls": ["hooks.slack.com/services/T/B/C"]}, "notify_urls[0] is not a URL of the form scheme://"),
    ({"notify_on": ["failed", "sometimes"]}, "notify_on has unknown events ['sometimes']"),
])
def test_bad_settings_are_refused_with_the_setting_and_value(settings, message):
    problems = holds.settings_problems(settings)
    assert any(message in problem for problem in problems), problems
    assert not any("secret" in problem for problem in problems)              # a password is never echoed


def test_good_settings_have_no_problem():
    assert holds.settings_problems({
        "remediation_days": ["mon", "tue"], "remediation_start_time": "22:00", "remediation_end_time": "06:00",
        "remediation_time_zone": "Europe/Berlin", "prometheus_url": "https://prom.example:9090/prometheus",
        "alert_label_matchers": ['severity=~"critical|page"', "cluster!=dev"], "max_remediations_per_fleet_run": 0,
        "notify_urls": ["json://127.0.0.1:8080/hook", "slack://T/B/C"], "notify_on": ["always"]}) == []


def test_apprise_refuses_a_scheme_it_cannot_send_to_without_echoing_the_url():
    problems = notify.apprise_problems(["json://127.0.0.1/x", "nosuchservice://token-123@host"])
    assert problems == ["notify_urls[1] (scheme nosuchservice://) is not a URL Apprise can send to: see Apprise's "
                        "list of services"]


def alert(name, state="firing", **labels):
    return {"labels": dict(labels, alertname=name), "state": state}


def test_alert_filters_as_kured_plus_label_matchers():
    active = [alert("ZombieCleanerCleanupFailures"), alert("Watchdog"), alert("NodeDown", severity="critical"),
              alert("DiskFilling", "pending", severity="warning")]

    def names(**kwargs):
        hold = alerts.decision("http://prom:9090", 1, alerts.AlertFilter(**kwargs), lambda url, timeout: active)
        return hold and hold["alerts"]
    assert names() == ["DiskFilling", "NodeDown"]                  # this job's own and Watchdog ignored by default
    assert names(firing_only=True) == ["NodeDown"]
    assert names(regexp="^Node", match_only=True) == ["NodeDown"]
    assert names(regexp="", matchers=['severity=~"crit.*"']) == ["NodeDown"]
    assert names(regexp="", matchers=["severity!=critical", 'alertname!~"Zombie.*|Watchdog"']) == ["DiskFilling"]
    assert names(regexp="^(Node|Disk|Zombie|Watchdog)") is None


def test_prometheus_that_cannot_answer_blocks():
    def down(url, timeout):
        raise alerts.Unreachable("Prometheus at %s not reached within %gs: refused" % (url, timeout))
    hold = alerts.decision("http://prom:9090", 2, alerts.AlertFilter(), down)
    assert hold["reason"] == "prometheus_unreachable" and "fail closed" in hold["detail"]
    assert alerts.decision("", 2, alerts.AlertFilter(), down) is None           # no URL: no check


def scan(*items, history=None):
    containers = [item for item in items if "container_id" in item]
    groups = [item for item in items if "key" in item]
    return {"to_cure": {"containers": containers, "host_groups": groups}, "cure_history": history or {}}


def box(cid, pressure=None, zombies=1, workload=None):
    return {"container_id": cid, "pids_pressure": pressure, "zombie_count": zombies, "workload": workload or cid}


def test_the_fleet_budget_goes_to_the_most_urgent_across_nodes_and_batches():
    scans = {"n1": scan(box("a", 0.2, 9), box("b", None, 50)), "n2": scan(box("c", 0.95, 1)),
             "n3": scan(box("d", 0.5, 3), box("e", 0.5, 4))}
    settings = {"max_remediations_per_fleet_run": 3}
    first = holds.decide(settings, scans, ["n1", "n2"], now=0)
    # c (95%), e (50%, 4 zombies), d (50%, 3): a and b of this batch wait, n3's places are kept for it.
    assert first["hosts"]["n1"]["items"].keys() == {"a", "b"} and first["hosts"]["n2"]["items"] == {}
    assert first["hosts"]["n1"]["items"]["a"]["reason"] == "budget"
    assert "number 4 of 5" in first["hosts"]["n1"]["items"]["a"]["detail"]
    # The next batch: n2 used one place, n3 gets the two left.
    done = {"n1": {"outcomes": [{"result": "deferred"}, {"result": "deferred"}]},
            "n2": {"outcomes": [{"result": "cured"}]}}
    second = holds.decide(settings, scans, ["n3"], remediations=done, now=0)
    assert second["hosts"]["n3"]["items"] == {} and second["budget"]["used"] == 1
    # Without a limit nothing is deferred.
    assert holds.decide({}, scans, ["n1", "n2", "n3"], now=0)["hosts"]["n1"]["items"] == {}


def test_a_workload_the_brake_holds_takes_no_place_in_the_budget():
    history = {"shop/web/app": {"cures": [100.0, 200.0, 300.0]}}
    scans = {"n1": scan(box("loop", 0.99, 9, "shop/web/app"), box("other", 0.1, 1), history=history)}
    decision = holds.decide({"max_remediations_per_fleet_run": 1}, scans, ["n1"], now=1000)
    assert decision["hosts"]["n1"]["items"] == {} and decision["budget"]["braked"] == 1
    # Reset by hand, it competes again (and wins: higher pids pressure).
    decision = holds.decide({"max_remediations_per_fleet_run": 1, "cure_history_reset": ["shop/web/app"]}, scans,
                            ["n1"], now=1000)
    assert list(decision["hosts"]["n1"]["items"]) == ["other"]


def test_a_closed_window_holds_every_node_and_prometheus_is_not_asked():
    asked = []
    decision = holds.decide({"remediation_start_time": "22:00", "remediation_end_time": "23:00",
                             "prometheus_url": "http://prom:9090"}, {}, ["n1", "n2"],
                            now=at("2026-11-25 12:00"), fetcher=lambda *args: asked.append(args) or [])
    assert decision["hosts"]["n1"]["node"]["reason"] == "window" and decision["hosts"]["n2"]["node"]["reason"] == "window"
    assert asked == []


def options(**kwargs):
    kwargs.setdefault("pause_file", "")
    return guardrails.GuardrailOptions(**kwargs)


def record(workload="shop/web/app", cid="c1"):
    return {"container_id": cid, "workload": workload}


def test_the_brake_stops_the_fourth_cure_and_the_window_sliding_past_releases_it():
    history = {}
    day = 86400.0
    for number, now in enumerate((0.0, 300.0, 600.0)):
        guard = guardrails.RunGuard(options(), history, now)
        assert guard.hold(record()) is None, number
        current = {"last_run": now}
        guard.after(current, [{"result": "reaped_in_place" if number else "cured", "workload": "shop/web/app"}],
                    now, (remediate.CURED, remediate.REAPED))
        history = current["cure_history"]
    guard = guardrails.RunGuard(options(), history, 900.0)
    outcome = {"container_id": "c1", "workload": "shop/web/app"}
    assert guard.apply(outcome, record())
    assert outcome["result"] == "recurring" and outcome["blocked_reason"] == "recurring"
    assert outcome["recurring"] == {"cures": 3, "first": 0.0, "until": day, "workload": "shop/web/app", "newly": True}
    current = {"last_run": 900.0}
    guard.after(current, [outcome], 900.0, (remediate.CURED, remediate.REAPED))
    assert current["cure_history"]["shop/web/app"]["recurring_since"] == 900.0
    assert current["guardrails"]["blocked"]["recurring"] == 1 and current["guardrails"]["recurring_workloads"] == 1
    again = {"container_id": "c1"}
    guardrails.RunGuard(options(), current["cure_history"], 1200.0).apply(again, record())
    assert again["recurring"]["newly"] is False                          # notified once, when it became recurring
    # Once the oldest cure is older than cure_window, it may be cured again.
    assert guardrails.RunGuard(options(), current["cure_history"], day + 1).hold(record()) is None
    # An explicit reset, or the brake turned off.
    assert guardrails.RunGuard(options(cure_history_reset=["shop/web/app"]), current["cure_history"], 1200.0
                               ).hold(record()) is None
    assert guardrails.RunGuard(options(max_cures_per_workload=0), current["cure_history"], 1200.0
                               ).hold(record()) is None


def test_host_groups_are_counted_by_their_parent_name():
    group = {"key": "host:42:100", "parent": {"pid": 42, "name": "worker"}}
    outcome = remediate.host_outcome(group)
    assert guardrails.workload_key(group) == guardrails.workload_key(outcome) == "host/worker"


def test_the_pause_file_holds_everything_and_carries_its_note(tmp_path):
    pause = tmp_path / "pause"
    assert guardrails.pause_reason(str(pause)) is None
    pause.write_text("INC-1 payments\nmore\n")
    reason = guardrails.pause_reason(str(pause))
    assert reason.startswith("paused: %s exists (since " % pause) and reason.endswith(": INC-1 payments")
    pause.unlink()
    os.symlink("/nonexistent", str(pause))                              # whatever is there counts, never followed
    assert guardrails.pause_reason(str(pause)).startswith("paused: ")
    guard = guardrails.RunGuard(options(), {}, 0.0, paused="paused: x exists")
    assert guard.hold(record())[0] == "paused"


def test_controller_holds_reach_the_node_and_are_checked():
    held = {"node": None, "items": {"c2": {"reason": "budget", "detail": "deferred: the fleet budget ..."}}}
    guard = guardrails.RunGuard(options(held_back=held), {}, 0.0)
    assert guard.hold(record(cid="c1")) is None
    assert guard.hold(record(cid="c2"))[:2] == ("budget", "deferred: the fleet budget ...")
    with pytest.raises(config.ConfigError):
        options(held_back={"node": {"reason": "because"}})


def test_blocked_reasons_have_a_series_on_every_run_and_only_for_the_run_that_held_them():
    assert metrics.BLOCK_REASONS == guardrails.REASONS
    held = {"last_run": 10.0, "guardrails": {"run": 10.0, "blocked": dict.fromkeys(guardrails.REASONS, 0, ) | {
        "window": 2}, "recurring_workloads": 1}}
    text = metrics.render(held)
    assert 'zombie_cleaner_remediation_blocked{reason="window"} 2' in text
    assert 'zombie_cleaner_remediation_blocked{reason="paused"} 0' in text
    assert "zombie_cleaner_recurring_workloads 1" in text
    later = dict(held, last_run=20.0)                                   # a scan no remediation followed
    assert 'zombie_cleaner_remediation_blocked{reason="window"} 0' in metrics.render(later)
    assert 'zombie_cleaner_remediation_blocked{reason="budget"} 0' in metrics.render({})


def test_the_state_keeps_the_cure_history_across_reboots_and_drops_a_bad_one(tmp_path):
    path = str(tmp_path / "state.json")
    state.save(path, {"version": 1, "boot_id": "old", "containers": {}, "host_groups": {},
                      "cure_history": {"w": {"cures": [1.0, 2.0], "recurring_since": None}},
                      "guardrails": {"run": 2.0, "blocked": {"window": 1}, "recurring_workloads": 0}})
    loaded, _ = state.load(path, "new-boot")
    assert loaded["cure_history"] == {"w": {"cures": [1.0, 2.0], "recurring_since": None}}
    state.save(path, {"version": 1, "boot_id": "b", "containers": {}, "host_groups": {},
                      "cure_history": {"w": {"cures": "yesterday"}}})
    loaded, warnings = state.load(path, "b", move_corrupt=False)
    assert "cure_history" not in loaded and "dropped section 'cure_history'" in warnings[0]


def collector_with(outcomes, scans=None, unreachable=None):
    collector = notify.RunCollector()
    for host, result in (scans or {"node1": {"node": "worker-1", "zombie_count": 7,
                                             "summary": {"confirmed": 2}}}).items():
        collector.task_result(host, "zombie_scan", result, "ok")
    collector.task_result("node1", "zombie_remediate", {"outcomes": outcomes}, "ok")
    for host, message in (unreachable or {}).items():
        collector.task_result(host, "zombie_scan", {"unreachable": True, "msg": message}, "unreachable")
    return collector


def test_the_notification_has_the_totals_then_each_item_with_node_pod_and_workload():
    outcomes = [
        {"result": "failed", "reason": "every rung failed; zombies still there", "namespace": "shop", "pod": "web-1",
         "container_name": "app", "workload": "shop/web/app", "container_id": "c1"},
        {"result": "recurring", "reason": "recurring: shop/api/app was cured 3 times within 24h", "namespace": "shop",
         "pod": "api-7d9f-x2x2x", "container_name": "app", "workload": "shop/api/app", "container_id": "c2",
         "recurring": {"newly": True}, "runtime": "containerd",
         "parents": [{"name": "node", "pid": 1, "parent_class": "application", "is_init": True}]},
        {"result": "deferred", "blocked_reason": "window", "reason": "deferred: outside the remediation window (x)",
         "name": "cache", "workload": "cache", "container_id": "c3"},
        {"result": "cured", "rung": "restart", "name": "db", "workload": "db", "container_id": "c4"},
    ]
    collector = collector_with(outcomes, unreachable={"node9": "ssh: connect timed out"})
    sections = notify.items(collector)
    assert notify.should_send(sections, None) == ["failed", "recurring", "unreachable"]
    title, body, kind = notify.message(collector, sections)
    assert title == "zombie-cleaner: 1 cured, 1 failed, 1 recurring, 1 held back, 1 unreachable on 2 nodes"
    assert kind == "failure"
    assert body.splitlines()[0] == ("zombie-cleaner run: 2 nodes (1 scanned, 1 unreachable); 7 zombies, 2 containers "
                                    "confirmed; 1 cured, 1 failed, 1 recurring, 1 held back, 1 unreachable.")
    assert ("Failed (1):\n- host node1 (node worker-1), pod shop/web-1, container app, workload shop/web/app: every "
            "rung failed; zombies still there") in body
    assert "workload shop/api/app: recurring: shop/api/app was cured 3 times within 24h Prevention: PID 1 of the " \
           "container (`node`) does not reap orphans. Set `shareProcessNamespace: true`" in body
    assert "- host node1 (node worker-1), cache, workload cache: [window] deferred: outside the remediation window" in body
    assert "Unreachable (1):\n- host node9: ssh: connect timed out" in body
    assert "Cured (1):\n- host node1 (node worker-1), db, workload db: cured by restart" in body


def test_by_default_only_what_needs_a_person_is_sent():
    quiet = notify.items(collector_with([{"result": "cured", "rung": "restart", "name": "db", "container_id": "c"},
                                         {"result": "deferred", "blocked_reason": "window", "reason": "x",
                                          "name": "cache", "container_id": "d"}]))
    assert notify.should_send(quiet, None) == []
    assert notify.should_send(quiet, ["cured"]) == ["cured"]
    assert notify.should_send(quiet, ["always"]) == ["cured", "window"]
    again = notify.items(collector_with([{"result": "recurring", "reason": "r", "name": "w", "container_id": "e",
                                          "recurring": {"newly": False}}]))
    assert notify.should_send(again, None) == []                       # notified when it became recurring


def test_a_notification_that_cannot_be_sent_is_a_problem_not_an_exception():
    class FakeApprise:
        class NotifyType:
            FAILURE, WARNING, INFO = "failure", "warning", "info"

        class NotifyFormat:
            TEXT = "text"

        class Apprise(list):
            def add(self, url):
                if url.startswith("bad"):
                    return False
                self.append(type("S", (), {"url": lambda self, privacy: "json://host/"})())
                return True

            def notify(self, **kwargs):
                raise OSError("connection refused")
    problems = notify.send(["bad://x", "json://host/"], "t", "b", "warning", apprise_module=FakeApprise)
    assert problems == ["notify_urls[0]: not a URL Apprise can send to",
                        "notification not delivered to notify_urls[1] json://host/ (connection refused)"]
    json.dumps(problems)
