# -*- coding: utf-8 -*-
# Copyright: zombie-cleaner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fleet report: every node's state file in, a Markdown summary and a self-contained HTML page out.

Runs on the controller. The HTML has no external assets: CSS inline, charts
as inline SVG, so it can be mailed, attached to a CI job or opened offline.
"""

from __future__ import annotations

import base64
import html
import json
import os
import time

from ansible.module_utils.zombie_cleaner.observe import cgroups
from ansible.module_utils.zombie_cleaner.record import atomicfile

WORST_CONTAINERS = 15
PALETTE = ("#d1495b", "#00798c", "#edae49", "#30638e", "#66a182", "#8d96a3", "#003d5b", "#b07aa1")


class Node:
    """One node as the report sees it: its state, or why there is none."""

    def __init__(self, host, state=None, problem=None, unreachable=False):
        self.host = host
        self.state = state or {}
        self.problem = problem
        self.unreachable = unreachable

    @property
    def ok(self):
        return self.problem is None

    @property
    def last_scan(self):
        return self.state.get("last_scan") or {}

    def counter(self, name):
        return (self.state.get("counters") or {}).get(name, 0)


def node_from_slurp(host, result):
    """A Node from an ansible.builtin.slurp result (or None when the host never ran the task)."""
    if not result:
        return Node(host, problem="no result: the host was not reached in this play")
    if result.get("unreachable"):
        return Node(host, problem="unreachable: %s" % (result.get("msg") or "").strip()[:300], unreachable=True)
    if result.get("failed") or "content" not in result:
        return Node(host, problem="no state file: %s" % (result.get("msg") or "never scanned?").strip()[:300])
    try:
        state = json.loads(base64.b64decode(result["content"]).decode("utf-8"))
    except (ValueError, TypeError) as error:
        return Node(host, problem="state file unreadable: %s" % error)
    if not isinstance(state, dict):
        return Node(host, problem="state file unreadable: not a JSON object")
    return Node(host, state=state)


def _advice(container, parent):
    """How to stop this workload making zombies, for the parent that does not reap: advice that would work for
    this pod (an init that reaps orphans cannot reap a living process's own children)."""
    if parent.get("parent_class") == "runtime":
        return ("The container runtime itself (%s) does not reap: a runtime bug, not the application's. "
                "Upgrade the runtime (containerd 1.6.10 shims had this, containerd#7717)." % parent.get("name"))
    if parent.get("parent_class") == "exec":
        return ("`%s` was exec'd into the container (an exec probe, `kubectl exec`, `ctr task exec`) and leaves its "
                "children unreaped. If it is a probe: make its command finish well within `timeoutSeconds` (or "
                "raise that), wrap it in `timeout`, or use an httpGet, tcpSocket or grpc probe; exec probes that "
                "time out leave their processes behind (kubernetes#110070, containerd#4594). An init in the "
                "image does not help here." % parent.get("name"))
    if parent.get("is_init") and container.get("pid_namespace") == "pod":
        return ("`%s` keeps its own children as zombies. The pod already shares one PID namespace, where pause "
                "reaps orphans but never a living process's own children: fix it to wait() for them (or ignore "
                "SIGCHLD), or run it under tini (`tini -s --` as a subreaper)." % parent.get("name"))
    if not parent.get("is_init"):
        return ("`%s` is not the container's PID 1: it starts children and never waits for them. Fix the code to "
                "wait() (or ignore SIGCHLD); an init such as tini only reaps orphans, not a living parent's "
                "children." % parent.get("name"))
    if container.get("pod"):
        return ("PID 1 of the container (`%s`) does not reap orphans. Set `shareProcessNamespace: true` in the "
                "pod spec so the pause container reaps them, or make tini or dumb-init PID 1 of the image "
                "(`ENTRYPOINT [\"tini\", \"--\"]`)." % parent.get("name"))
    if container.get("runtime") in ("docker", "podman"):
        return ("PID 1 of the container (`%s`) does not reap orphans. Run it with `%s run --init` (`init: true` "
                "in Compose), or make tini or dumb-init the image's ENTRYPOINT." % (
                    parent.get("name"), container["runtime"]))
    return ("PID 1 of the container (`%s`) does not reap orphans. Make tini or dumb-init PID 1 of the image "
            "(`ENTRYPOINT [\"tini\", \"--\"]`)." % parent.get("name"))


# The same advice in the run's notification (controller/notify.py).
advice = _advice


def held_back(nodes):
    """What each node's last run held back (guardrails), and the workloads its cure-loop brake holds:
    [{"host", "reason", "count", "detail"}] and [{"host", "workload", "cures", "since"}]."""
    holds, recurring = [], []
    for node in nodes:
        guard = node.state.get("guardrails") or {}
        if guard.get("run") is not None and guard.get("run") == node.state.get("last_run"):
            for reason, count in sorted((guard.get("blocked") or {}).items()):
                if count:
                    holds.append({"host": node.host, "reason": reason, "count": count,
                                  "detail": (guard.get("details") or {}).get(reason)})
        for workload, entry in sorted((node.state.get("cure_history") or {}).items()):
            if isinstance(entry, dict) and entry.get("recurring_since"):
                recurring.append({"host": node.host, "workload": workload, "cures": len(entry.get("cures") or []),
                                  "since": entry["recurring_since"]})
    return holds, recurring


def build(nodes, now=None, repeat_threshold=2):
    """The report's model: plain data the Markdown, the HTML and the module result share."""
    now = now if now is not None else time.time()
    reachable = [node for node in nodes if node.ok]
    rows = [node_row(node) for node in nodes]
    holds, recurring = held_back(reachable)
    return {"generated": now, "totals": fleet_totals(nodes, rows), "nodes": rows,
            "worst_containers": worst_containers(reachable),
            "repeat_offenders": repeat_offenders(reachable, repeat_threshold), "held_back": holds,
            "recurring": recurring,
            "problems": [{"host": row["host"], "problem": row["problem"], "unreachable": row["unreachable"]}
                         for row in rows if not row["ok"]]}


def worst_containers(reachable):
    """The containers closest to failing forks across the fleet, then those with most zombies."""
    containers = [dict(item, host=node.host) for node in reachable for item in node.last_scan.get("containers") or []]
    return sorted(containers, key=lambda item: cgroups.pressure_order(item.get("pids_pressure"),
                                                                      item.get("zombies")))[:WORST_CONTAINERS]


def _workloads(reachable):
    """{workload: what the fleet's remembered remediations and this scan's confirmations say of it}."""
    workloads = {}
    for node in reachable:
        confirmed_now = {item.get("workload") or item["label"]: item for item in node.last_scan.get("containers") or []
                         if item.get("confirmed")}
        for outcome in node.state.get("remediations") or []:
            # The workload outlives its pods (older states name only the container: label).
            key = outcome.get("workload") or outcome["label"]
            entry = workloads.setdefault(key, {"workload": key, "remediations": 0, "hosts": set(),
                                               "back_on": set(), "parents": {}, "container": {}})
            entry["remediations"] += 1
            entry["hosts"].add(node.host)
            entry["container"] = {"runtime": outcome.get("runtime"), "pod": "/" in outcome["label"],
                                  "pid_namespace": outcome.get("pid_namespace")}
            for parent in outcome.get("parents") or []:
                entry["parents"].setdefault(parent.get("name"), parent)
        for label, item in confirmed_now.items():
            if label in workloads:
                workloads[label]["back_on"].add(node.host)     # a cure that did not last
                for parent in item.get("parents") or []:
                    workloads[label]["parents"][parent.get("name")] = parent
    return workloads


def repeat_offenders(reachable, repeat_threshold):
    """The same workload remediated again and again, or confirmed once more after a cure, with advice."""
    offenders = []
    for entry in sorted(_workloads(reachable).values(), key=lambda item: (-item["remediations"], item["workload"])):
        if entry["remediations"] + (1 if entry["back_on"] else 0) < repeat_threshold:
            continue
        container = dict(entry["container"])
        parents = [parent for parent in entry["parents"].values() if parent.get("parent_class") != "host"]
        offenders.append({
            "workload": entry["workload"], "remediations": entry["remediations"], "hosts": sorted(entry["hosts"]),
            "confirmed_again_on": sorted(entry["back_on"]),
            "parents": [parent.get("name") for parent in parents],
            "advice": [_advice(container, parent) for parent in parents] or [
                "No application parent recorded: look at the audit log on %s." % ", ".join(sorted(entry["hosts"]))],
        })
    return offenders


def node_row(node):
    """One node's line of the report."""
    scan = node.last_scan
    return {
        "host": node.host, "ok": node.ok, "problem": node.problem, "unreachable": node.unreachable,
        "zombies": scan.get("zombies"), "host_zombies": scan.get("host_zombies"),
        "containers": len(scan.get("containers") or []) + (scan.get("containers_omitted") or 0),
        "confirmed": scan.get("confirmed"), "protected": scan.get("protected"),
        "cleaned": node.counter("containers_cleaned_total"), "failures": node.counter("cleanup_failures_total"),
        "reaped": node.counter("containers_reaped_in_place_total"),
        "timeouts": node.counter("container_operation_timeouts_total"),
        "node_pids_pressure": (scan.get("node_pids") or {}).get("pressure"),
        "last_run": scan.get("time"),
        "history": [(entry["time"], entry["zombies"]) for entry in node.state.get("history") or []],
    }


def fleet_totals(nodes, rows):
    """The fleet's headline numbers, over the nodes whose state was read."""
    ok_rows = [row for row in rows if row["ok"]]
    return {
        "nodes": len(nodes), "reachable": len(ok_rows),
        "unreachable": sum(1 for node in nodes if node.unreachable),
        "without_state": sum(1 for node in nodes if not node.ok and not node.unreachable),
        "zombies": sum(row["zombies"] or 0 for row in ok_rows),
        "host_zombies": sum(row["host_zombies"] or 0 for row in ok_rows),
        "containers": sum(row["containers"] for row in ok_rows),
        "confirmed": sum(row["confirmed"] or 0 for row in ok_rows),
        "protected": sum(row["protected"] or 0 for row in ok_rows),
        "remediated": sum(row["cleaned"] for row in ok_rows),
        "reaped_in_place": sum(row["reaped"] for row in ok_rows),
        "failures": sum(row["failures"] for row in ok_rows),
        "timeouts": sum(row["timeouts"] for row in ok_rows),
    }


def _when(timestamp):
    return time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(timestamp)) if timestamp else "never"


def _pressure(item):
    if item.get("pids_pressure") is None:
        return "no limit"
    return "%d%%" % round(item["pids_pressure"] * 100)


def _pids(item):
    if item.get("pids_current") is None:
        return "?"
    return "%s/%s" % (item["pids_current"], item["pids_max"] if item.get("pids_max") is not None else "max")


def _md(text):
    # Table cells: a pipe would split the cell, markup would be rendered by most viewers.
    return (str(text if text is not None else "").replace("|", "\\|").replace("\n", " ")
            .replace("<", "&lt;").replace(">", "&gt;"))


def _num(value):
    return "-" if value is None else str(value)


def _share(value):
    """A pressure (0..1) as a percentage, or "-"."""
    return "-" if value is None else "%d%%" % round(value * 100)


def totals_line(totals):
    """The headline numbers, worded the same in both outputs."""
    return ("%(nodes)d nodes (%(reachable)d reachable, %(unreachable)d unreachable), %(zombies)d zombies "
            "(%(host_zombies)d on hosts), %(containers)d containers with zombies, %(confirmed)d confirmed, "
            "%(protected)d protected, %(remediated)d remediated (%(reaped_in_place)d reaped in place without a restart), "
            "%(failures)d failed remediations" % totals)


def offence(item):
    text = "cured %d time%s on %s" % (item["remediations"], "" if item["remediations"] == 1 else "s",
                                      ", ".join(item["hosts"]))
    if item["confirmed_again_on"]:
        text += ", zombies confirmed again on %s" % ", ".join(item["confirmed_again_on"])
    return text


def markdown(model, title="zombie-cleaner fleet report"):
    out = ["# %s" % title, "", "Generated %s." % _when(model["generated"]), "", "**%s**" % totals_line(model["totals"]),
           "", "## Nodes", "",
           "| node | zombies | host zombies | containers | confirmed | protected | remediated | reaped in place "
           "| failed | node PIDs used | last run |",
           "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for row in model["nodes"]:
        if row["ok"]:
            out.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                _md(row["host"]), _num(row["zombies"]), _num(row["host_zombies"]), row["containers"],
                _num(row["confirmed"]), _num(row["protected"]), row["cleaned"], row["reaped"], row["failures"],
                _share(row["node_pids_pressure"]), _when(row["last_run"])))
        else:
            out.append("| %s | %s |  |  |  |  |  |  |  |  |  |" % (_md(row["host"]), _md(row["problem"])))
    if model["problems"]:
        out += ["", "## Unreachable or without state", ""]
        out += ["- **%s**: %s" % (_md(item["host"]), _md(item["problem"])) for item in model["problems"]]
    out += ["", "## Containers closest to failing forks (pids pressure)", ""]
    if model["worst_containers"]:
        out += ["| node | container | runtime | zombies | pids | pressure | seen | decision |",
                "| --- | --- | --- | ---: | ---: | ---: | ---: | --- |"]
        for item in model["worst_containers"]:
            out.append("| %s | %s | %s | %s | %s | %s | %s | %s |" % (
                _md(item["host"]), _md(item["label"]), _md(item.get("runtime")), item.get("zombies"), _pids(item),
                _pressure(item), item.get("sightings"), _md(item.get("decision"))))
    else:
        out.append("No container holds zombies.")
    out += ["", "## Repeat offenders and how to prevent them", ""]
    if model["repeat_offenders"]:
        for item in model["repeat_offenders"]:
            out.append("- **%s** (%s): %s" % (_md(item["workload"]), _md(offence(item)), " ".join(item["advice"])))
    else:
        out.append("None: no workload needed curing more than once.")
    if model.get("held_back") or model.get("recurring"):
        out += ["", "## Held back by the guardrails", ""]
        out += ["- **%s**: %d %s: %s" % (_md(item["host"]), item["count"], _md(item["reason"]), _md(item["detail"]))
                for item in model.get("held_back") or []]
        out += ["- **%s**: workload %s is recurring (cured %d times within cure_window, since %s): not cured "
                "automatically" % (_md(item["host"]), _md(item["workload"]), item["cures"], _when(item["since"]))
                for item in model.get("recurring") or []]
    return "\n".join(out) + "\n"


# ---- HTML -------------------------------------------------------------------------------------------------------

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2rem auto;max-width:1100px;color:#1d2430;
background:#fafbfc;padding:0 1rem}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #dde2e8;
padding-bottom:.3rem}
.sub{color:#5b6676;margin-top:0}.cards{display:flex;flex-wrap:wrap;gap:.8rem;margin:1rem 0}
.card{background:#fff;border:1px solid #dde2e8;border-radius:8px;padding:.7rem 1rem;min-width:120px}
.card b{display:block;font-size:1.6rem}.card span{color:#5b6676;font-size:.85rem}
.card.bad b{color:#c0392b}.card.good b{color:#1e8449}
table{border-collapse:collapse;width:100%;background:#fff;border:1px solid #dde2e8;font-size:.9rem}
th,td{padding:.35rem .6rem;border-bottom:1px solid #eef1f4;text-align:left}th{background:#f3f5f8}
td.n{text-align:right;font-variant-numeric:tabular-nums}tr.down td{color:#c0392b}
.bar{background:#eef1f4;border-radius:3px;height:10px;width:120px;display:inline-block;vertical-align:middle}
.bar i{display:block;height:10px;border-radius:3px}
.advice{background:#fff;border:1px solid #dde2e8;border-left:4px solid #edae49;padding:.6rem 1rem;margin:.6rem 0}
code{background:#f3f5f8;padding:0 .2rem;border-radius:3px}.muted{color:#5b6676}
"""


def _e(text):
    return html.escape(str(text if text is not None else ""))


def _inline_code(text):
    """Markdown-style `code` spans of the advice texts as <code>."""
    parts = _e(text).split("`")
    return "".join(part if index % 2 == 0 else "<code>%s</code>" % part for index, part in enumerate(parts))


def trend_svg(rows, width=1060, height=260):
    """Zombies per node over the recent runs: one line per node, time on x."""
    series = [(row["host"], row["history"]) for row in rows if row["ok"] and row["history"]]
    if not series:
        return '<p class="muted">No runs recorded yet.</p>'
    left, right, top, bottom = 50, 180, 15, 30
    times = [when for _, history in series for when, _ in history]
    peak = max([value for _, history in series for _, value in history] + [1])
    start, end = min(times), max(times)
    span = (end - start) or 1.0

    def x(when):
        return left + (when - start) / span * (width - left - right)

    def y(value):
        return top + (1 - value / float(peak)) * (height - top - bottom)

    parts = ['<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="zombies per node over recent runs" '
             'width="%d" height="%d" viewBox="0 0 %d %d" font-size="11" font-family="sans-serif">'
             % (width, height, width, height)]
    ticks = 4 if peak >= 4 else int(peak)
    peak = max(peak, ticks)
    if peak % ticks:
        peak += ticks - peak % ticks       # whole-number gridlines
    for step in range(ticks + 1):
        value = peak * step // ticks
        parts.append('<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#eef1f4"/>' % (
            left, width - right, y(value), y(value)))
        parts.append('<text x="%d" y="%.1f" text-anchor="end" fill="#5b6676">%s</text>' % (
            left - 6, y(value) + 4, value))
    parts.append('<text x="%d" y="%d" fill="#5b6676">%s</text>' % (left, height - 8, _e(_when(start))))
    parts.append('<text x="%d" y="%d" text-anchor="end" fill="#5b6676">%s</text>' % (
        width - right, height - 8, _e(_when(end))))
    for index, (host, history) in enumerate(series):
        color = PALETTE[index % len(PALETTE)]
        points = " ".join("%.1f,%.1f" % (x(when), y(value)) for when, value in history)
        parts.append('<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>' % (color, points))
        for when, value in history:
            parts.append('<circle cx="%.1f" cy="%.1f" r="2.5" fill="%s"><title>%s %s: %d zombies</title></circle>'
                         % (x(when), y(value), color, _e(host), _e(_when(when)), value))
        legend_y = top + 14 * index + 8
        parts.append('<rect x="%d" y="%d" width="10" height="10" fill="%s"/>' % (width - right + 14, legend_y - 8, color))
        parts.append('<text x="%d" y="%d">%s (%d now)</text>' % (width - right + 30, legend_y + 1, _e(host),
                                                                  history[-1][1]))
    parts.append("</svg>")
    return "".join(parts)


def pressure_bar(item):
    if item.get("pids_pressure") is None:
        return '<span class="muted">no limit</span>'
    share = max(0.0, min(1.0, item["pids_pressure"]))
    color = "#c0392b" if share >= 0.9 else "#edae49" if share >= 0.7 else "#66a182"
    return ('<span class="bar"><i style="width:%d%%;background:%s"></i></span> %s'
            % (round(share * 100), color, _pressure(item)))


def html_page(model, title="zombie-cleaner fleet report"):
    out = _html_head(model, title)
    out.append("<h2>Zombies per node over the recent runs</h2>")
    out.append(trend_svg(model["nodes"]))
    out += _html_nodes(model["nodes"])
    out.append("<h2>Containers closest to failing forks</h2>")
    out += _html_containers(model["worst_containers"])
    out.append("<h2>Repeat offenders and how to prevent them</h2>")
    if model["repeat_offenders"]:
        for item in model["repeat_offenders"]:
            out.append('<div class="advice"><b>%s</b> <span class="muted">%s</span><p>%s</p></div>' % (
                _e(item["workload"]), _e(offence(item)), "</p><p>".join(_inline_code(text) for text in item["advice"])))
    else:
        out.append('<p class="muted">None: no workload needed curing more than once.</p>')
    if model.get("held_back") or model.get("recurring"):
        out.append('<h2>Held back by the guardrails</h2><ul id="held-back">')
        out += ["<li><b>%s</b>: %d %s: %s</li>" % (_e(item["host"]), item["count"], _e(item["reason"]),
                                                   _e(item["detail"])) for item in model.get("held_back") or []]
        out += ["<li><b>%s</b>: workload %s is recurring (cured %d times within cure_window, since %s): not cured "
                "automatically</li>" % (_e(item["host"]), _e(item["workload"]), item["cures"], _e(_when(item["since"])))
                for item in model.get("recurring") or []]
        out.append("</ul>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def _html_head(model, title):
    """The page up to its cards: the headline numbers."""
    totals = model["totals"]
    cards = [("nodes", totals["nodes"], ""), ("unreachable", totals["unreachable"],
                                               "bad" if totals["unreachable"] else "good"),
             ("zombies", totals["zombies"], "bad" if totals["zombies"] else "good"),
             ("containers with zombies", totals["containers"], ""), ("confirmed", totals["confirmed"], ""),
             ("protected", totals["protected"], ""), ("remediated", totals["remediated"], "good"),
             ("reaped in place, no restart", totals["reaped_in_place"], "good"),
             ("failed remediations", totals["failures"], "bad" if totals["failures"] else "good")]
    out = ['<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           "<title>%s</title><style>%s</style></head><body>" % (_e(title), _CSS),
           "<h1>%s</h1><p class=\"sub\">Generated %s &middot; <span id=\"totals\">%s</span></p>" % (
               _e(title), _e(_when(model["generated"])), _e(totals_line(totals))),
           '<div class="cards">']
    out += ['<div class="card %s"><b>%s</b><span>%s</span></div>' % (cls, value, _e(name))
            for name, value, cls in cards]
    out.append("</div>")
    return out


def _html_nodes(rows):
    out = ['<h2>Nodes</h2><table id="nodes"><tr><th>node</th><th>zombies</th><th>host zombies</th>'
           "<th>containers</th><th>confirmed</th><th>protected</th><th>remediated</th><th>reaped in place</th>"
           "<th>failed</th><th>node PIDs used</th>"
           "<th>last run</th></tr>"]
    for row in rows:
        if row["ok"]:
            out.append('<tr><td>%s</td><td class="n">%s</td><td class="n">%s</td><td class="n">%s</td>'
                       '<td class="n">%s</td><td class="n">%s</td><td class="n">%s</td><td class="n">%s</td>'
                       '<td class="n">%s</td><td class="n">%s</td><td>%s</td></tr>' % (
                           _e(row["host"]), _num(row["zombies"]), _num(row["host_zombies"]), row["containers"],
                           _num(row["confirmed"]), _num(row["protected"]), row["cleaned"], row["reaped"],
                           row["failures"], _e(_share(row["node_pids_pressure"])), _e(_when(row["last_run"]))))
        else:
            out.append('<tr class="down"><td>%s</td><td colspan="10">%s</td></tr>' % (_e(row["host"]),
                                                                                      _e(row["problem"])))
    out.append("</table>")
    return out


def _html_containers(worst):
    if not worst:
        return ['<p class="muted">No container holds zombies.</p>']
    out = ['<table id="containers"><tr><th>node</th><th>container</th><th>runtime</th><th>zombies</th>'
           "<th>pids</th><th>pids pressure</th><th>seen</th><th>decision</th></tr>"]
    for item in worst:
        out.append('<tr><td>%s</td><td>%s</td><td>%s</td><td class="n">%s</td><td class="n">%s</td><td>%s</td>'
                   '<td class="n">%s</td><td>%s</td></tr>' % (
                       _e(item["host"]), _e(item["label"]), _e(item.get("runtime")), item.get("zombies"),
                       _e(_pids(item)), pressure_bar(item), item.get("sightings"), _e(item.get("decision"))))
    out.append("</table>")
    return out


def write(output_dir, model, title="zombie-cleaner fleet report"):
    """Write report.md and report.html; returns their paths."""
    os.makedirs(output_dir, exist_ok=True)
    paths = (os.path.join(output_dir, "report.md"), os.path.join(output_dir, "report.html"))
    atomicfile.write(paths[0], markdown(model, title), mode=0o644, durable=False)
    atomicfile.write(paths[1], html_page(model, title), mode=0o644, durable=False)
    return paths
