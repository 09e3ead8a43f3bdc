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
