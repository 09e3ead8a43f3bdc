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
