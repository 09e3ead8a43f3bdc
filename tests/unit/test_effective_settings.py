"""config.effective_settings: environment > the original `cleaner:` mapping > role variables, in one place for the
zombie_scan action and the role's filter."""

import pytest

from ansible.module_utils.zombie_cleaner import config

ROLE = {"check_interval": "5m", "confirm_count": 3, "container_timeout": "30s", "process_timeout": "10s",
        "max_concurrent_containers": 10, "whitelist_patterns": ["^kube-system-.*"], "dry_run": False,
        "log_level": "info"}


def test_role_values_when_nothing_overrides_them():
    assert config.effective_settings(ROLE, None, {}) == ROLE


def test_cleaner_beats_the_role_and_the_environment_beats_both():
    cleaner = {"confirm_count": 2, "check_interval": "1m", "process_timeout": "3s", "log_level": "DEBUG"}
    environ = {"CONFIRM_COUNT": "1", "CHECK_INTERVAL": "", "PROCESS_TIMEOUT": "99s", "LOG_LEVEL": "Warning"}
    effective = config.effective_settings(ROLE, cleaner, environ)
    assert effective["confirm_count"] == "1"            # environment
    assert effective["check_interval"] == "1m"          # an empty variable is unset: cleaner's
    assert effective["process_timeout"] == "3s"         # not an environment setting: cleaner's
    assert effective["log_level"] == "warning"          # lower case, from the environment
    assert effective["container_timeout"] == "30s"      # the role's


@pytest.mark.parametrize("given, expected", [
    (True, True), ("yes", True), ("On", True), ("1", True), (1, True),
    (False, False), ("no", False), ("off", False), ("0", False), (None, False), ("maybe", False)])
def test_dry_run_is_true_only_for_the_true_words(given, expected):
    assert config.effective_settings(ROLE, {"dry_run": given}, {})["dry_run"] is expected


def test_dry_run_from_the_environment_wins_and_a_set_none_stays_for_the_check():
    assert config.effective_settings(ROLE, {"dry_run": False}, {"DRY_RUN": "true"})["dry_run"] is True
    # A key given as null is given: the settings check judges it (not the role's value in its place).
    assert config.effective_settings(ROLE, {"confirm_count": None}, {})["confirm_count"] is None


@pytest.mark.parametrize("cleaner", [None, {}, [], "nonsense", 5])
def test_a_cleaner_that_is_not_a_mapping_overrides_nothing(cleaner):
    # settings_problems reports it ("cleaner: must be a mapping"); the values stay the role's meanwhile.
    assert config.effective_settings(ROLE, cleaner, {}) == ROLE
