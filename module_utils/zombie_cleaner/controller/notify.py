# -*- coding: utf-8 -*-
# Copyright: zombie-cleaner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Notifications once per run, from the controller, through Apprise (controller side only, as kured uses
shoutrrr): Slack, Teams, e-mail, a webhook or any of Apprise's services by URL, no payload written by hand.

A RunCollector is fed the run's task results (the zombie_cleaner_notify callback does it); message() gives the
run's totals, then each failed, recurring, held-back, unreachable and cured item with its node, pod and workload.
It is sent only when an event of notify_on happened (by default: something needs a person).
"""

from __future__ import annotations

from ansible.module_utils.zombie_cleaner.controller import report

DEFAULT_NOTIFY_ON = ("failed", "recurring", "unreachable", "prometheus_unreachable")
HELD_REASONS = ("window", "alert", "prometheus_unreachable", "budget", "paused")
ITEMS_PER_SECTION = 25
CURED_RESULTS = ("cured", "reaped_in_place")


def apprise_problems(urls):
    """Apprise's own verdict on each URL (loads its services: run it once, not per node). Never echoes a URL."""
    if not urls or isinstance(urls, str) or not isinstance(urls, (list, tuple)):
        return []
    try:
        import apprise
    except ImportError:
        return ["notify_urls is set but Apprise is not installed on the controller (pip install -r requirements.txt)"]
    problems = []
    for index, url in enumerate(urls):
        if apprise.Apprise.instantiate(str(url).strip()) is None:
            problems.append("notify_urls[%d] (scheme %s://) is not a URL Apprise can send to: see Apprise's list "
                            "of services" % (index, str(url).split("://", 1)[0]))
    return problems


class RunCollector:
    """What a run did, host by host, from its task results."""

    def __init__(self):
        self.scans = {}
        self.remediations = {}
        self.lost = {}
        self.unreachable = {}
        self.failures = {}
        self.guardrails = []
        self.hosts = set()

    def task_result(self, host, action, result, status):
        """One task result: status is ok, failed or unreachable; action the task's module name."""
        self.hosts.add(host)
        action = (action or "").rsplit(".", 1)[-1]
        if status == "unreachable" or result.get("unreachable"):
            if action == "zombie_remediate":
                self.lost[host] = result.get("msg") or "unreachable"
            else:
                self.unreachable.setdefault(host, (result.get("msg") or "unreachable").strip())
            return
        if action == "zombie_scan":
            if status == "failed" or result.get("failed"):
                self.failures[host] = "scan failed: %s" % (result.get("msg") or "?")
            else:
                self.scans[host] = result
        elif action == "zombie_remediate":
            if "outcomes" in result:
                self.remediations[host] = result
            elif status == "failed":
                self.failures[host] = "remediation failed: %s" % (result.get("msg") or "?")
        elif action == "zombie_guardrails":
            self.guardrails.append(result)
            if status == "failed":
                self.failures[host] = "guardrails: %s" % (result.get("msg") or "?")

    def outcomes(self):
        for host in sorted(self.remediations):
            for outcome in self.remediations[host].get("outcomes") or []:
                yield host, outcome


def _where(collector, host, outcome):
    scan = collector.scans.get(host) or {}
    parts = ["host %s" % host]
    if scan.get("node") and scan["node"] != host:
        parts[0] += " (node %s)" % scan["node"]
    if outcome.get("pod"):
        parts.append("pod %s/%s" % (outcome.get("namespace"), outcome["pod"]))
        parts.append("container %s" % (outcome.get("container_name") or "?"))
    else:
        parts.append(outcome.get("name") or str(outcome.get("container_id"))[:12])
    if outcome.get("workload"):
        parts.append("workload %s" % outcome["workload"])
    return ", ".join(parts)


def _advice(outcome):
    container = {"runtime": outcome.get("runtime"), "pod": outcome.get("pod"),
                 "pid_namespace": outcome.get("pid_namespace")}
    texts = [report.advice(container, parent) for parent in outcome.get("parents") or []
             if parent.get("parent_class") != "host"]
    return " ".join(texts)


def items(collector):
    """{section: [(event, line)]} of the run."""
    sections = {"failed": [], "recurring": [], "held back": [], "unreachable": [], "cured": []}
    for host, outcome in collector.outcomes():
        result = outcome.get("result")
        where = _where(collector, host, outcome)
        if result == "failed":
            sections["failed"].append(("failed", "%s: %s" % (where, outcome.get("reason"))))
        elif result == "recurring":
            recurring = outcome.get("recurring") or {}
            advice = _advice(outcome)
            sections["recurring"].append(("recurring" if recurring.get("newly") else "recurring_again",
                                          "%s: %s%s" % (where, outcome.get("reason"),
                                                        " Prevention: " + advice if advice else "")))
        elif outcome.get("blocked_reason") in HELD_REASONS:
            sections["held back"].append((outcome["blocked_reason"], "%s: [%s] %s" % (
                where, outcome["blocked_reason"], outcome.get("reason"))))
        elif result in CURED_RESULTS:
            sections["cured"].append(("cured", "%s: %s by %s" % (where, result, outcome.get("rung"))))
    for host, message in sorted(collector.failures.items()):
        sections["failed"].append(("failed", "host %s: %s" % (host, message)))
    for host, message in sorted(collector.lost.items()):
        sections["failed"].append(("failed", "host %s: lost during its remediation, outcome unknown: %s"
                                   % (host, message)))
    for host, message in sorted(collector.unreachable.items()):
        sections["unreachable"].append(("unreachable", "host %s: %s" % (host, message[:300])))
    return sections


def events(sections):
    return {event for entries in sections.values() for event, _ in entries}


def should_send(sections, notify_on):
    """The events of notify_on that happened (empty: nothing to send). A workload already recurring in an
    earlier run does not notify again by itself; 'always' sends every run."""
    wanted = set(notify_on or DEFAULT_NOTIFY_ON)
    happened = events(sections)
    if "always" in wanted:
        return sorted(happened) or ["always"]
    return sorted(happened & wanted)


def message(collector, sections, check_mode=False):
    """(title, body, kind) of the run: kind is failure, warning or info."""
    scans = collector.scans.values()
    outcomes = [outcome for _, outcome in collector.outcomes()]
    count = lambda *results: sum(1 for outcome in outcomes if outcome.get("result") in results)  # noqa: E731
    totals = {
        "cured": count(*CURED_RESULTS), "failed": len(sections["failed"]), "recurring": count("recurring"),
        "held back": len(sections["held back"]), "unreachable": len(sections["unreachable"]),
    }
    nodes = len(collector.hosts | set(collector.unreachable))
    zombies = sum(scan.get("zombie_count") or 0 for scan in scans)
    confirmed = sum((scan.get("summary") or {}).get("confirmed") or 0 for scan in scans)
    headline = ", ".join("%d %s" % (value, name) for name, value in totals.items() if value) or "nothing to report"
    title = "zombie-cleaner%s: %s on %d node%s" % (" (check mode)" if check_mode else "", headline, nodes,
                                                   "" if nodes == 1 else "s")
    lines = ["zombie-cleaner run%s: %d nodes (%d scanned, %d unreachable); %d zombies, %d containers confirmed; "
             "%d cured, %d failed, %d recurring, %d held back, %d unreachable." % (
                 " (check mode: nothing was done)" if check_mode else "", nodes, len(collector.scans),
                 totals["unreachable"], zombies, confirmed, totals["cured"], totals["failed"], totals["recurring"],
                 totals["held back"], totals["unreachable"])]
    for decision in collector.guardrails[:1]:
        for line in decision.get("report") or []:
            lines.append(line)
    for name in ("failed", "recurring", "held back", "unreachable", "cured"):
        entries = sections[name]
        if not entries:
            continue
        lines.append("")
        lines.append("%s (%d):" % (name.capitalize(), len(entries)))
        lines += ["- " + text for _, text in entries[:ITEMS_PER_SECTION]]
        if len(entries) > ITEMS_PER_SECTION:
            lines.append("- and %d more (see the play output and the fleet report)" % (len(entries) - ITEMS_PER_SECTION))
    kind = "failure" if totals["failed"] or totals["unreachable"] else "warning" if (
        totals["recurring"] or totals["held back"]) else "info"
    return title, "\n".join(lines) + "\n", kind


def send(urls, title, body, kind, apprise_module=None):
    """Send to each URL on its own (so one that fails is named); returns [problems]. Never raises."""
    try:
        apprise = apprise_module or __import__("apprise")
    except ImportError:
        return ["notification not sent: Apprise is not installed on the controller (pip install -r requirements.txt)"]
    kinds = {"failure": apprise.NotifyType.FAILURE, "warning": apprise.NotifyType.WARNING,
             "info": apprise.NotifyType.INFO}
    problems = []
    for index, url in enumerate(urls):
        service = apprise.Apprise()
        if not service.add(str(url).strip()):
            problems.append("notify_urls[%d]: not a URL Apprise can send to" % index)
            continue
        shown = service[0].url(privacy=True)
        try:
            delivered = service.notify(body=body, title=title, notify_type=kinds.get(kind, apprise.NotifyType.INFO),
                                       body_format=apprise.NotifyFormat.TEXT)
        except Exception as error:  # pylint: disable=broad-except
            delivered, shown = False, "%s (%s)" % (shown, error)
        if not delivered:
            problems.append("notification not delivered to notify_urls[%d] %s" % (index, shown))
    return problems
