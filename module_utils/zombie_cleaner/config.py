# -*- coding: utf-8 -*-
# Copyright: zombie-cleaner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Configuration of the original design: durations, validation, whitelist."""

from __future__ import annotations

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


def parse_duration(parameter, value):
    """'30s', '5m', '1h', '1h30m', '250ms' or a bare number of seconds -> float seconds (> 0)."""
    if isinstance(value, bool):
        raise ConfigError(parameter, value, "expected a duration such as 30s, 5m or 1h")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        text = str(value).strip()
        try:
            seconds = float(text)
        except ValueError:
            match = _DURATION.match(text)
            if not text or not match or not any(match.groups()):
                raise ConfigError(parameter, value, "expected a duration such as 30s, 5m or 1h")
            hours, minutes, secs, millis = (int(group or 0) for group in match.groups())
            seconds = hours * 3600 + minutes * 60 + secs + millis / 1000.0
    if seconds <= 0:
        raise ConfigError(parameter, value, "must be longer than zero")
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

# How each effective setting is checked before a run: the same parsers the modules use on the node.
_SETTING_CHECKS = (
    ("confirm_count", positive_int),
    ("max_concurrent_containers", positive_int),
    ("check_interval", parse_duration),
    ("container_timeout", parse_duration),
    ("process_timeout", parse_duration),
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
