# -*- coding: utf-8 -*-
# Copyright: zombie-cleaner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Remediation windows (controller only): the days and the time of day when confirmed work may be cured.

kured's --reboot-days, --start-time, --end-time and --time-zone, with two differences: a window that wraps
past midnight belongs to the day it opens on (a Friday 22:00-06:00 window is still open at 03:00 on
Saturday, and not at 03:00 on Monday), and a closed window says when it opens next. The default (every day,
00:00 to 24:00, UTC) is always open.
"""

from __future__ import annotations

import datetime
import re

try:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError
except ImportError:  # pragma: no cover - the controller runs Python 3.9 or newer (ansible-core 2.19 needs 3.11)
    ZoneInfo = None
    ZoneInfoNotFoundError = KeyError

from ansible.module_utils.zombie_cleaner.config import ConfigError

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_FULL = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
# kured writes su, mo, tu...; people write mon or monday. All mean the same day.
_DAY_NAMES = {name: index for names in (DAYS, _FULL, ("mo", "tu", "we", "th", "fr", "sa", "su"))
              for index, name in enumerate(names)}
_TIME = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2}))?$")
DAY_SECONDS = 86400


def parse_days(value):
    """A list (or a comma-separated string) of day names -> sorted tuple of weekday numbers (0 = Monday)."""
    parameter = "remediation_days"
    if isinstance(value, str):
        value = [part for part in re.split(r"[,\s]+", value) if part]
    if not isinstance(value, (list, tuple)) or not value:
        raise ConfigError(parameter, value, "expected a non-empty list of days such as [mon, tue, wed, thu, fri] "
                                            "(to stop remediation, use the pause file or remediate_enabled)")
    days = set()
    for item in value:
        name = str(item).strip().lower()
        if name not in _DAY_NAMES:
            raise ConfigError(parameter, item, "not a day: expected one of %s (or monday, mo...)" % ", ".join(DAYS))
        days.add(_DAY_NAMES[name])
    return tuple(sorted(days))


def parse_time(parameter, value, allow_end_of_day=False):
    """'22:00', '6:30' or '06:30:15' -> seconds after midnight. '24:00' (end of the day) only for an end."""
    match = None if isinstance(value, bool) else _TIME.match(str(value).strip())
    if not match:
        raise ConfigError(parameter, value, "expected a time of day such as 22:00 or 06:30")
    hours, minutes, seconds = int(match.group(1)), int(match.group(2)), int(match.group(3) or 0)
    total = hours * 3600 + minutes * 60 + seconds
    if minutes > 59 or seconds > 59 or total > DAY_SECONDS or (total == DAY_SECONDS and not allow_end_of_day):
        raise ConfigError(parameter, value, "not a time of day: expected 00:00 to 23:59%s"
                          % (" or 24:00" if allow_end_of_day else ""))
    return total


def parse_zone(value):
    """An IANA time zone name -> tzinfo (zoneinfo, with the system's tz database or the tzdata package)."""
    name = str(value).strip()
    if name.upper() == "UTC":
        return datetime.timezone.utc
    if ZoneInfo is None or not name or name.startswith("/") or ".." in name:
        raise ConfigError("remediation_time_zone", value, "expected an IANA time zone name such as Europe/Berlin")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ConfigError("remediation_time_zone", value,
                          "unknown time zone: expected an IANA name such as Europe/Berlin or UTC")


def _clock(seconds):
    return "%02d:%02d" % (seconds // 3600, seconds % 3600 // 60) + (":%02d" % (seconds % 60) if seconds % 60 else "")


def _day_ranges(days):
    """(0, 1, 2, 3, 4) -> 'mon-fri'; (0, 2, 5) -> 'mon,wed,sat'."""
    if len(days) == 7:
        return "every day"
    runs, run = [], [days[0]]
    for day in days[1:]:
        if day == run[-1] + 1:
            run.append(day)
        else:
            runs.append(run)
            run = [day]
    runs.append(run)
    return ",".join(DAYS[r[0]] if len(r) == 1 else "%s-%s" % (DAYS[r[0]], DAYS[r[-1]]) for r in runs)


class Window:
    """Days (weekday numbers), start and end (seconds after midnight), in a time zone."""

    def __init__(self, days=DAYS, start="00:00", end="24:00", time_zone="UTC"):
        self.days = parse_days(days)
        self.start = parse_time("remediation_start_time", start)
        self.end = parse_time("remediation_end_time", end, allow_end_of_day=True)
        if self.start == self.end:
            raise ConfigError("remediation_end_time", end, "equals remediation_start_time: an empty or a whole-day "
                                                           "window is ambiguous; for the whole day use 00:00 to 24:00")
        self.zone_name = str(time_zone).strip()
        self.zone = parse_zone(time_zone)

    @property
    def always(self):
        return len(self.days) == 7 and self.start == 0 and self.end == DAY_SECONDS

    def _local(self, now):
        return datetime.datetime.fromtimestamp(now, self.zone)

    def is_open(self, now):
        local = self._local(now)
        seconds = local.hour * 3600 + local.minute * 60 + local.second
        today = local.weekday()
        if self.start < self.end:
            return today in self.days and self.start <= seconds < self.end
        # Wraps past midnight: the part after midnight belongs to the day the window opened.
        return (seconds >= self.start and today in self.days) or \
            (seconds < self.end and (today - 1) % 7 in self.days)

    def next_open(self, now):
        """When the window opens next (epoch seconds), or None if it never closes."""
        if self.always:
            return None
        local = self._local(now)
        for offset in range(0, 8):
            day = local.date() + datetime.timedelta(days=offset)
            if day.weekday() not in self.days:
                continue
            opening = datetime.datetime.combine(day, datetime.time(self.start // 3600, self.start % 3600 // 60,
                                                                   self.start % 60), tzinfo=self.zone)
            if opening.timestamp() > now:
                return opening.timestamp()
        return None

    def describe(self):
        return "%s %s-%s %s" % (_day_ranges(self.days), _clock(self.start), _clock(self.end), self.zone_name)


def from_settings(settings):
    """The Window of the role's settings (raises ConfigError naming the setting)."""
    return Window(settings.get("remediation_days", DAYS), settings.get("remediation_start_time", "00:00"),
                  settings.get("remediation_end_time", "24:00"), settings.get("remediation_time_zone", "UTC"))


def _in(seconds):
    seconds = int(seconds)
    if seconds >= 86400:
        return "%dd%dh" % (seconds // 86400, seconds % 86400 // 3600)
    if seconds >= 3600:
        return "%dh%02dm" % (seconds // 3600, seconds % 3600 // 60)
    return "%dm" % max(1, seconds // 60)


def decision(window, now):
    """None when the window is open now, else the hold: {"reason": "window", "detail": ...}."""
    if window.is_open(now):
        return None
    opens = window.next_open(now)
    when = ""
    if opens is not None:
        when = "; opens %s, in %s" % (datetime.datetime.fromtimestamp(opens, window.zone).strftime("%a %Y-%m-%d %H:%M %Z"),
                                      _in(opens - now))
    return {"reason": "window", "detail": "deferred: outside the remediation window (%s%s)" % (window.describe(), when)}
