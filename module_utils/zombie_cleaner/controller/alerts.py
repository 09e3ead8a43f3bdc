# -*- coding: utf-8 -*-
# Copyright: zombie-cleaner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Block remediation while Prometheus alerts fire (controller only), and fail closed.

One GET of <prometheus_url>/api/v1/alerts per decision, with a timeout. Its answer is
{"status": "success", "data": {"alerts": [{"labels": {"alertname": ...}, "annotations": {...},
"state": "firing" | "pending", "activeAt": ..., "value": ...}]}}. Anything else (no answer, a timeout,
a status other than 200, a body that is not that) blocks remediation and says why.

Filters, as kured's: alert_filter_regexp names alerts to ignore (this job's own by default, or curing would
wait for the alerts it is meant to clear); alert_filter_match_only turns it round (only matching alerts
block); alert_firing_only leaves pending alerts out. Beyond kured, alert_label_matchers (Prometheus matcher
syntax, all must hold) restrict the alerts that count, e.g. severity=~"critical|page" or cluster="prod".
"""

from __future__ import annotations

import base64
import json
import re
import urllib.parse

from ansible.module_utils.zombie_cleaner.config import ConfigError

# This job's own alerts (monitoring/prometheus/zombie-cleaner.rules.yml) and the always-firing ones of
# kube-prometheus: none of them is a reason to hold a cure back.
DEFAULT_FILTER = "^(Zombie.*|Watchdog|InfoInhibitor)$"
_MATCHER = re.compile(r'^\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*(?:"((?:[^"\\]|\\.)*)"|([^"]*?))\s*$')
ANSWER_BYTES = 16 * 1024 * 1024


def parse_url(value):
    """prometheus_url: empty (off) or an http(s) URL of the server (any path prefix it is served under)."""
    text = str(value or "").strip()
    if not text:
        return None
    parsed = urllib.parse.urlsplit(text)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ConfigError("prometheus_url", _redacted(text),
                          "expected an http:// or https:// URL of the Prometheus server, such as "
                          "http://prometheus.monitoring:9090 (or empty to not check alerts)")
    return text


def _redacted(url):
    """The URL without a password, for messages."""
    parsed = urllib.parse.urlsplit(url)
    if parsed.password is None:
        return url
    netloc = "%s:***@%s" % (parsed.username, parsed.netloc.rsplit("@", 1)[1])
    return urllib.parse.urlunsplit(parsed._replace(netloc=netloc))


def parse_regexp(value):
    text = str(value or "")
    if not text:
        return None
    try:
        return re.compile(text)
    except re.error as error:
        raise ConfigError("alert_filter_regexp", text, "not a valid regular expression (%s)" % error)


def parse_matchers(value):
    """['severity=~"critical|page"', 'cluster!=dev'] -> [(label, op, value or anchored regex)]."""
    if value in (None, ""):
        return []
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise ConfigError("alert_label_matchers", value, 'expected a list of matchers such as severity=~"critical|page"')
    matchers = []
    for item in value:
        match = _MATCHER.match(str(item))
        if not match:
            raise ConfigError("alert_label_matchers", item,
                              'expected label=value, label!=value, label=~regex or label!~regex '
                              '(value optionally in double quotes)')
        label, op, quoted, bare = match.groups()
        text = bytes(quoted, "utf-8").decode("unicode_escape") if quoted is not None else bare
        if op in ("=~", "!~"):
            try:
                text = re.compile("^(?:%s)$" % text)        # anchored, as Prometheus does
            except re.error as error:
                raise ConfigError("alert_label_matchers", item, "not a valid regular expression (%s)" % error)
        matchers.append((label, op, text))
    return matchers


def _holds(matcher, labels):
    label, op, value = matcher
    actual = str(labels.get(label, ""))              # an absent label matches "", as in Prometheus
    if op == "=":
        return actual == value
    if op == "!=":
        return actual != value
    found = value.match(actual) is not None
    return found if op == "=~" else not found


class AlertFilter:
    def __init__(self, regexp=DEFAULT_FILTER, match_only=False, firing_only=False, matchers=()):
        self.regexp = parse_regexp(regexp)
        self.match_only = bool(match_only)
        if self.match_only and self.regexp is None:
            raise ConfigError("alert_filter_match_only", match_only,
                              "needs alert_filter_regexp: it makes only the alerts that regexp matches block")
        self.firing_only = bool(firing_only)
        self.matchers = parse_matchers(list(matchers))

    def blocks(self, alert):
        labels = alert.get("labels") or {}
        name = str(labels.get("alertname", ""))
        if self.firing_only and alert.get("state") != "firing":
            return False
        if not all(_holds(matcher, labels) for matcher in self.matchers):
            return False
        if self.regexp is None:
            return True
        matched = self.regexp.search(name) is not None
        return matched if self.match_only else not matched


def from_settings(settings):
    return AlertFilter(settings.get("alert_filter_regexp", DEFAULT_FILTER), settings.get("alert_filter_match_only"),
                       settings.get("alert_firing_only"), settings.get("alert_label_matchers") or [])


class Unreachable(Exception):
    """Prometheus did not give a usable answer."""


def fetch(url, timeout):
    """The active alerts (firing and pending) from Prometheus's /api/v1/alerts; raises Unreachable."""
    # Imported here: the scan's settings check imports this module for every node, and needs no HTTP client.
    import urllib.error
    import urllib.request

    parsed = urllib.parse.urlsplit(url)
    headers = {"Accept": "application/json"}
    if parsed.username is not None:
        # urllib does not send the user info of a URL: basic auth by hand, the URL sent without it.
        token = "%s:%s" % (urllib.parse.unquote(parsed.username), urllib.parse.unquote(parsed.password or ""))
        headers["Authorization"] = "Basic " + base64.b64encode(token.encode("utf-8")).decode("ascii")
        parsed = parsed._replace(netloc=parsed.netloc.rsplit("@", 1)[1])
    endpoint = urllib.parse.urlunsplit(parsed._replace(path=parsed.path.rstrip("/") + "/api/v1/alerts",
                                                       query="", fragment=""))
    shown = _redacted(url)
    try:
        with urllib.request.urlopen(urllib.request.Request(endpoint, headers=headers), timeout=timeout) as answer:
            status, body = answer.status, answer.read(ANSWER_BYTES)
    except urllib.error.HTTPError as error:
        raise Unreachable("Prometheus at %s answered HTTP %d %s" % (shown, error.code, error.reason))
    except (urllib.error.URLError, OSError, ValueError) as error:
        reason = getattr(error, "reason", error)
        raise Unreachable("Prometheus at %s not reached within %gs: %s" % (shown, timeout, reason))
    if status != 200:
        raise Unreachable("Prometheus at %s answered HTTP %d" % (shown, status))
    try:
        data = json.loads(body.decode("utf-8"))
        alerts = data["data"]["alerts"]
        if data.get("status") != "success" or not isinstance(alerts, list) or \
                not all(isinstance(item, dict) and isinstance(item.get("labels"), dict) for item in alerts):
            raise ValueError("not a list of alerts")
    except (ValueError, KeyError, TypeError) as error:
        raise Unreachable("Prometheus at %s gave no list of alerts at /api/v1/alerts (%s)" % (shown, error))
    return alerts


def describe(alert):
    labels = alert.get("labels") or {}
    extra = ",".join("%s=%s" % (key, labels[key]) for key in sorted(labels) if key in ("severity", "namespace",
                                                                                      "instance"))
    return "%s (%s%s)" % (labels.get("alertname", "?"), alert.get("state", "?"), ", " + extra if extra else "")


def decision(url, timeout, alert_filter, fetcher=fetch):
    """None when remediation may go on, else the hold: {"reason": "alert" | "prometheus_unreachable",
    "detail": ..., "alerts": [names]}. Fails closed: no usable answer is a hold."""
    if not url:
        return None
    try:
        alerts = fetcher(url, timeout)
    except Unreachable as error:
        return {"reason": "prometheus_unreachable", "alerts": [],
                "detail": "deferred: %s; remediation is held back until it answers (fail closed)" % error}
    blocking = [alert for alert in alerts if alert_filter.blocks(alert)]
    if not blocking:
        return None
    names = sorted({str((alert.get("labels") or {}).get("alertname", "?")) for alert in blocking})
    shown = "; ".join(describe(alert) for alert in blocking[:5]) + (
        "; and %d more" % (len(blocking) - 5) if len(blocking) > 5 else "")
    return {"reason": "alert", "alerts": names,
            "detail": "deferred: %d alert%s active in Prometheus: %s" % (len(blocking), "" if len(blocking) == 1
                                                                          else "s", shown)}
