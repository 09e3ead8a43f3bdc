"""The settings check the zombie_scan action plugin makes on the controller before a node is contacted:
the same parsers the modules use on the node, every problem named with its key and value."""

import pytest

from ansible.module_utils.zombie_cleaner import config

GOOD = {"check_interval": "5m", "confirm_count": 3, "container_timeout": "30s", "process_timeout": "10s",
        "max_concurrent_containers": "10", "whitelist_patterns": ["^kube-system-.*"], "log_level": "INFO"}


def test_good_settings_have_no_problems():
    assert config.settings_problems({"confirm_count": 2, "dry_run": True}, GOOD) == []
    assert config.settings_problems(None, {}) == []


@pytest.mark.parametrize("key, value, message", [
    ("confirm_count", "three", "confirm_count=three is invalid: expected a whole number of at least 1"),
    ("confirm_count", 0, "confirm_count=0 is invalid: expected a whole number of at least 1"),
    ("confirm_count", True, "confirm_count=True is invalid: expected a whole number of at least 1"),
    ("max_concurrent_containers", "2.5", "max_concurrent_containers=2.5 is invalid: expected a whole number"),
    ("check_interval", "soon", "check_interval=soon is invalid: expected a duration such as 30s, 5m or 1h"),
    # A zero duration: the node's parser refuses it, so the controller does too.
    ("container_timeout", "0s", "container_timeout=0s is invalid: must be longer than zero"),
    ("process_timeout", "", "process_timeout= is invalid: expected a duration"),
    ("log_level", "loud", "log_level must be one of debug, info, warning, error (got loud)"),
    ("whitelist_patterns", "^a$", "whitelist_patterns must be a list of regexes (got str)"),
    ("whitelist_patterns", ["^ok$", "[unclosed"],
     "whitelist_patterns='[unclosed' is invalid: not a valid regular expression"),
])
def test_each_bad_setting_is_named_with_its_value(key, value, message):
    problems = config.settings_problems(None, dict(GOOD, **{key: value}))
    assert len(problems) == 1 and problems[0].startswith(message), problems


def test_every_problem_is_reported_at_once():
    problems = config.settings_problems({"confirm_cuont": 2, "log_level": "loud"},
                                        dict(GOOD, log_level="loud", container_timeout="soon"))
    assert problems[0].startswith("cleaner: has unknown keys ['confirm_cuont']; known keys are ['check_interval'")
    assert [problem.split(" ")[0] for problem in problems[1:]] == ["container_timeout=soon", "log_level"]


@pytest.mark.parametrize("original, message", [
    ("confirm_count: 2", "cleaner: must be a mapping of settings, got str"),
    ([1, 2], "cleaner: must be a mapping of settings, got list"),
])
def test_cleaner_must_be_a_mapping(original, message):
    assert config.settings_problems(original, GOOD) == [message]


# Durations that parse as floats but bound nothing: an endless lock wait, a reaper without a deadline,
# an escalation without a wait. Refused on the controller and again on the node.
ENDLESS = ["nan", "NaN", "inf", "Infinity", "1e400", float("nan"), float("inf"), 10 ** 400]


@pytest.mark.parametrize("key", ["check_interval", "container_timeout", "process_timeout", "replacement_wait"])
@pytest.mark.parametrize("value", ENDLESS, ids=[repr(value)[:12] for value in ENDLESS])
def test_endless_durations_are_refused(key, value):
    assert config.parse_duration(key, "30s") == 30.0 and config.parse_duration(key, " 250ms ") == 0.25
    problems = config.settings_problems(None, dict(GOOD, **{key: value}))
    assert len(problems) == 1 and problems[0].startswith("%s=%s is invalid: " % (key, value)), problems
    assert "not a number" in problems[0] or "must be finite and at most" in problems[0], problems


@pytest.mark.parametrize("key, longest, too_long, limit", [
    ("process_timeout", "1h", "1h1s", "1h (3600s)"),
    ("container_timeout", "3600", 3601, "1h (3600s)"),
    ("replacement_wait", "60m", "61m", "1h (3600s)"),
    ("check_interval", "168h", "169h", "168h (604800s)"),
    ("module_timeout", "24h", "25h", "24h (86400s)"),
])
def test_durations_longer_than_their_limit_are_refused(key, longest, too_long, limit):
    assert config.settings_problems(None, dict(GOOD, **{key: longest})) == []
    problems = config.settings_problems(None, dict(GOOD, **{key: too_long}))
    assert problems == ["%s=%s is invalid: must be finite and at most %s" % (key, too_long, limit)]


def test_remediation_settings_are_checked_on_the_controller_too():
    problems = config.settings_problems(None, dict(GOOD, replacement_wait="inf", max_remediations_per_run=0))
    assert [problem.split(" ")[0] for problem in problems] == ["replacement_wait=inf", "max_remediations_per_run=0"]


def fixture_args(tmp_path, **extra):
    from helpers.procfixture import FakeNode
    node = FakeNode(tmp_path / "node")
    node.add(1, 0, "init")
    args = dict(proc_root=str(node.proc), state_path=str(tmp_path / "state" / "state.json"),
                audit_log_path=str(tmp_path / "log" / "audit.log"),
                metrics_textfile_dir=str(tmp_path / "metrics"), **node.runtime_files())
    (tmp_path / "metrics").mkdir()
    args.update(extra)
    return args


def nothing_written(tmp_path):
    return (not (tmp_path / "state").exists() and not (tmp_path / "log").exists()
            and list((tmp_path / "metrics").iterdir()) == [])


@pytest.mark.parametrize("key, value, message", [
    ("process_timeout", "nan", "process_timeout='nan' is invalid: not a number; expected a duration such as 30s, 5m or 1h"),
    ("process_timeout", "inf", "process_timeout='inf' is invalid: must be finite and at most 1h (3600s)"),
    ("check_interval", "1e400", "check_interval='1e400' is invalid: must be finite and at most 168h (604800s)"),
    ("check_interval", "200h", "check_interval='200h' is invalid: must be finite and at most 168h (604800s)"),
])
def test_the_scan_module_refuses_endless_durations_and_writes_nothing(monkeypatch, tmp_path, key, value, message):
    import zombie_scan
    from helpers.modules import ModuleFail, run_module
    with pytest.raises(ModuleFail) as failed:
        run_module(monkeypatch, zombie_scan, fixture_args(tmp_path, **{key: value}))
    assert failed.value.result["msg"] == message and failed.value.result["parameter"] == key
    assert nothing_written(tmp_path)


@pytest.mark.parametrize("key, value, message", [
    ("container_timeout", "inf", "container_timeout='inf' is invalid: must be finite and at most 1h (3600s)"),
    ("process_timeout", "NaN", "process_timeout='NaN' is invalid: not a number; expected a duration such as 30s, 5m or 1h"),
    ("replacement_wait", "1e400", "replacement_wait='1e400' is invalid: must be finite and at most 1h (3600s)"),
    ("replacement_wait", "2h", "replacement_wait='2h' is invalid: must be finite and at most 1h (3600s)"),
])
def test_the_remediate_module_refuses_endless_durations_and_writes_nothing(monkeypatch, tmp_path, key, value,
                                                                           message):
    import zombie_remediate
    from helpers.modules import ModuleFail, run_module
    with pytest.raises(ModuleFail) as failed:
        run_module(monkeypatch, zombie_remediate, fixture_args(tmp_path, containers=[], **{key: value}))
    assert failed.value.result["msg"] == message and failed.value.result["parameter"] == key
    assert nothing_written(tmp_path)
