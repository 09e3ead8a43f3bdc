# -*- coding: utf-8 -*-
# Copyright: zombie-cleaner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Configuration of the original design: durations, validation, whitelist."""

from __future__ import annotations

import math
import re

DEFAULT_WHITELIST = ["^kube-system-.*", "^monitoring-.*", "^logging-.*"]

_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m(?!s))?(?:(\d+)s)?(?:(\d+)ms)?$")


class ConfigError(ValueError):
    """A bad setting: names the parameter, the value and what would be accepted."""

    def __init__(self, parameter, value, expected):
        self.parameter = parameter
        self.value = value
        self.expected = expected
        super().__init__("%s=%r is invalid: %s" % (parameter, value, expected))


# Upper bounds of the durations. A longer value is a typo, not a setting: it would turn a bound into
# none at all (a lock wait, a reaper or an escalation that never ends). Names not listed get the largest.
DURATION_LIMITS = {
    "process_timeout": 3600.0,
    "container_timeout": 3600.0,
    "replacement_wait": 3600.0,
    "check_interval": 7 * 86400.0,
    "module_timeout": 86400.0,
}
LONGEST_DURATION = max(DURATION_LIMITS.values())
DURATION_EXPECTED = "expected a duration such as 30s, 5m or 1h"


def duration_text(seconds):
    """3600.0 -> '1h', 604800.0 -> '168h', 90.0 -> '90s': in the grammar parse_duration accepts."""
    if seconds % 3600 == 0:
        return "%dh" % (seconds // 3600)
    return "%gs" % seconds


def _seconds(parameter, value):
    """The number of seconds a value says, before any range check."""
    if isinstance(value, bool):
        raise ConfigError(parameter, value, DURATION_EXPECTED)
    if isinstance(value, (int, float)):
        return float(value)
    text = str(value).strip()
    try:
        return float(text)     # also 'nan', 'inf' and '1e400' (= inf): refused by the caller
    except ValueError:
        pass
    match = _DURATION.match(text)
    if not text or not match or not any(match.groups()):
        raise ConfigError(parameter, value, DURATION_EXPECTED)
    hours, minutes, secs, millis = (int(group or 0) for group in match.groups())
    return hours * 3600 + minutes * 60 + secs + millis / 1000.0


def parse_duration(parameter, value):
    """'30s', '5m', '1h', '1h30m', '250ms' or a bare number of seconds -> float seconds,
    longer than zero and at most DURATION_LIMITS[parameter]."""
    try:
        seconds = _seconds(parameter, value)
    except OverflowError:       # an int too large for a float
        seconds = math.inf
    limit = DURATION_LIMITS.get(str(parameter).lower(), LONGEST_DURATION)
    if math.isnan(seconds):
        raise ConfigError(parameter, value, "not a number; %s" % DURATION_EXPECTED)
    if seconds <= 0:
        raise ConfigError(parameter, value, "must be longer than zero")
    if seconds > limit:
        raise ConfigError(parameter, value, "must be finite and at most %s (%gs)" % (duration_text(limit), limit))
    return seconds


_SIZE = re.compile(r"^(\d+)\s*([KMG]i?B?|B)?$", re.I)
_SIZE_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024 ** 2, "g": 1024 ** 3}


def parse_size(parameter, value):
    """'10M', '512K', '1G' (binary units) or a number of bytes -> int bytes (> 0)."""
    match = None if isinstance(value, bool) else _SIZE.match(str(value).strip())
    if not match:
        raise ConfigError(parameter, value, "expected a size such as 10M, 512K or a number of bytes")
    size = int(match.group(1)) * _SIZE_UNITS[(match.group(2) or "")[:1].lower()]
    if size <= 0:
        raise ConfigError(parameter, value, "must be larger than zero")
    return size


def whole_number(parameter, value, minimum):
    """An int of at least minimum (booleans and fractions refused), or ConfigError naming the parameter."""
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = None
    if isinstance(value, bool) or number is None or number < minimum:
        raise ConfigError(parameter, value, "expected a whole number of at least %d" % minimum)
    return number


def non_negative_int(parameter, value):
    return whole_number(parameter, value, 0)


def positive_int(parameter, value):
    return whole_number(parameter, value, 1)


def compile_whitelist(patterns):
    """Compile every pattern; the first bad one raises ConfigError naming it."""
    if patterns is None:
        return []
    if isinstance(patterns, str):
        patterns = [patterns]
    compiled = []
    for pattern in patterns:
        try:
            compiled.append(re.compile(str(pattern)))
        except re.error as error:
            raise ConfigError("whitelist_patterns", pattern, "not a valid regular expression (%s)" % error)
    return compiled


def whitelist_subjects(container):
    """The strings the whitelist is matched against, in the original design's forms."""
    subjects = []
    namespace, pod = container.get("namespace"), container.get("pod")
    if namespace and pod:
        subjects.append("%s-%s" % (namespace, pod))
        subjects.append("%s/%s/%s" % (namespace, pod, container.get("container_name") or ""))
    if container.get("name"):
        subjects.append(container["name"])
    return subjects


def protecting_pattern(compiled, container):
    """(pattern, subject) of the first whitelist match, or None."""
    for subject in whitelist_subjects(container):
        for pattern in compiled:
            if pattern.search(subject):
                return pattern.pattern, subject
    return None


LOG_LEVELS = ("debug", "info", "warning", "error")


def log_level(value):
    level = str(value).strip().lower()
    if level not in LOG_LEVELS:
        raise ConfigError("log_level", value, "expected one of %s" % ", ".join(LOG_LEVELS))
    return level


# The keys of the original design's `cleaner:` YAML.
ORIGINAL_KEYS = ("check_interval", "confirm_count", "container_timeout", "process_timeout",
                 "max_concurrent_containers", "whitelist_patterns", "dry_run", "log_level")

# The settings the controller's environment can set, by key (CHECK_INTERVAL, ...): the original design's variables.
ENVIRONMENT_KEYS = ("check_interval", "confirm_count", "dry_run", "log_level")
TRUE_WORDS = ("true", "yes", "on", "1")


def effective_settings(role_values, original, environ):
    """The run's settings, keyed as in ORIGINAL_KEYS, after the precedence: the controller's environment
    (ENVIRONMENT_KEYS, upper case; empty means unset), then the original design's `cleaner:` mapping, then the
    role's variables. role_values: zombie_cleaner_<key> by key. dry_run comes out a bool and log_level lower case;
    the rest as given, for settings_problems to judge. One place for the precedence: the zombie_scan action and the
    role's filter (for the other tasks) both use it."""
    original = original if isinstance(original, dict) else {}
    effective = {}
    for key in ORIGINAL_KEYS:
        value = original[key] if key in original else role_values[key]
        if key in ENVIRONMENT_KEYS and environ.get(key.upper()):
            value = environ[key.upper()]
        effective[key] = value
    effective["dry_run"] = str(effective["dry_run"]).lower() in TRUE_WORDS
    effective["log_level"] = str(effective["log_level"]).lower()
    return effective


def optional_duration(parameter, value):
    """A duration, or None when empty (0 and "" mean: not set)."""
    if value in (None, "", 0, "0"):
        return None
    return parse_duration(parameter, value)


# How each effective setting is checked before a run: the same parsers the modules use on the node.
_SETTING_CHECKS = (
    ("confirm_count", positive_int),
    ("max_concurrent_containers", positive_int),
    ("check_interval", parse_duration),
    ("container_timeout", parse_duration),
    ("process_timeout", parse_duration),
    ("replacement_wait", parse_duration),
    ("max_remediations_per_run", positive_int),
    ("module_timeout", optional_duration),
)


def type_name(value):
    """The plain type name of a value (Ansible's tagged str, list and dict subclasses read as such)."""
    for kind in (bool, int, float, str, list, dict):
        if isinstance(value, kind):
            return kind.__name__
    return type(value).__name__


def settings_problems(original, effective):
    """Every problem with a run's settings, as messages naming the key and the value.

    original: the `cleaner:` YAML as given (None when absent); effective: the settings after the
    environment > cleaner: > role precedence, keyed as in ORIGINAL_KEYS. Missing keys are not checked."""
    problems = []
    if original is not None and not isinstance(original, dict):
        problems.append("cleaner: must be a mapping of settings, got %s" % type_name(original))
    elif original:
        unknown = sorted(str(key) for key in original if key not in ORIGINAL_KEYS)
        if unknown:
            problems.append("cleaner: has unknown keys %s; known keys are %s" % (unknown, list(ORIGINAL_KEYS)))
    for key, check in _SETTING_CHECKS:
        if key in effective:
            try:
                check(key, effective[key])
            except ConfigError as error:
                problems.append("%s=%s is invalid: %s" % (key, error.value, error.expected))
    if "log_level" in effective and str(effective["log_level"]).strip().lower() not in LOG_LEVELS:
        problems.append("log_level must be one of %s (got %s)" % (", ".join(LOG_LEVELS), effective["log_level"]))
    patterns = effective.get("whitelist_patterns", [])
    if isinstance(patterns, str) or not isinstance(patterns, (list, tuple)):
        problems.append("whitelist_patterns must be a list of regexes (got %s)" % type_name(patterns))
    else:
        try:
            compile_whitelist(patterns)
        except ConfigError as error:
            problems.append(str(error))
    return problems


# What a module task costs besides the bounds of its own work: the connection, the module's transfer and
# Python start, the state, audit and metrics writes. Generous: the limit is for a hung node, not a slow one.
MODULE_OVERHEAD = 60.0
# After a rung that worked, the remediation waits up to this long for the zombies to go.
CURE_WAIT = 5.0


def remediation_seconds(container_timeout, process_timeout, replacement_wait, max_per_run, max_concurrent):
    """The longest one remediation run on a node takes when every bound is reached (seconds).

    Per container: the in-place reap (process_timeout), then restart, SIGKILL of the init, SIGKILL of the
    shim, start again and the running check (container_timeout each), a cure wait after each rung and the
    wait for the kubelet's new container. Containers go max_concurrent at a time; host groups one by one;
    the state lock is waited for twice."""
    per_container = process_timeout + 5 * container_timeout + 4 * CURE_WAIT + replacement_wait
    rounds = -(-max_per_run // max_concurrent)
    return rounds * per_container + max_per_run * process_timeout + 2 * process_timeout


def _lenient(check, key, settings, fallback):
    # A bad setting is the settings check's to report, with its own message: here it only must not
    # stop the task from being templated, so it counts as the largest value allowed.
    try:
        return check(key, settings[key])
    except (ConfigError, KeyError, TypeError):
        return fallback


def module_timeouts(settings, override=None):
    """Whole seconds for the `timeout:` of the role's module tasks: {"scan": s, "remediate": s}.

    settings: the effective process_timeout, container_timeout, replacement_wait,
    max_remediations_per_run and max_concurrent_containers. override (zombie_cleaner_module_timeout):
    a duration that replaces both, or empty for the derived values."""
    seconds = _lenient(optional_duration, "module_timeout", {"module_timeout": override}, LONGEST_DURATION)
    if seconds is not None:
        return {"scan": int(math.ceil(seconds)), "remediate": int(math.ceil(seconds))}
    process = _lenient(parse_duration, "process_timeout", settings, DURATION_LIMITS["process_timeout"])
    container = _lenient(parse_duration, "container_timeout", settings, DURATION_LIMITS["container_timeout"])
    wait = _lenient(parse_duration, "replacement_wait", settings, DURATION_LIMITS["replacement_wait"])
    per_run = _lenient(positive_int, "max_remediations_per_run", settings, 1)
    concurrent = _lenient(positive_int, "max_concurrent_containers", settings, 1)
    # The scan: the /proc scan and the lock wait, process_timeout each.
    scan = 2 * process + MODULE_OVERHEAD
    remediate = remediation_seconds(container, process, wait, per_run, concurrent) + MODULE_OVERHEAD
    return {"scan": int(math.ceil(scan)), "remediate": int(math.ceil(remediate))}
