"""Fleet cost: the scheduled run (site.yml, dry run) against `ansible -m ping` on the same SSH test fleet,
same inventory and forks, interleaved in one run:
  - the quiet fleet (nothing to find) at 20 and at 100 nodes: target site/ping at most 1.2;
  - a busy fleet, 2,000 zombies on each of 20 nodes (nothing confirmed: quick runs under the 5m
    check_interval confirm nothing): target at most 1.3.
Then where the time goes (one more site.yml run per fleet with bench/callback_plugins/task_times: start-up,
each play and task), and where one controller ends: site.yml at 100 nodes at forks 20 (ansible.cfg) and 50,
with SSH connections open (ControlPersist) and new (a schedule every 5m finds ControlPersist's 120 s over),
the cost per node and how many nodes fit in one check_interval.

    python bench/fleet_cost.py [--quiet 20,100] [--busy 20x2000] [--rounds 5] [--sizing-rounds 2]

Every process runs on this machine: the controller, and each node's sshd and module. The wall time per node
is therefore an upper bound for a controller whose nodes are other machines (there each node's work runs on
the node, in parallel); the controller's own CPU per node (ansible-playbook, its workers and ssh clients, from
wait4(2)) does not depend on that, and the rest of the machine's CPU meanwhile (/proc/stat) is the nodes'.
"""

import argparse
import json
import os
import sys
import tempfile
import time

from common import ROOT, line, median, pid_room, run, verdict

sys.path.insert(0, os.path.join(ROOT, "tests", "fleet"))
from fleet import Fleet  # noqa: E402

QUIET_TARGET = 1.2
BUSY_TARGET = 1.3
CHECK_INTERVAL = 300                     # seconds: the role's default check_interval, 5m
DEFAULT_FORKS = 20                       # ansible.cfg
# Addresses and port of its own: never in the way of a test fleet.
PORT, FIRST_ADDRESS = 2223, 100
CALLBACKS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "callback_plugins")


class FleetRuns:
    """ping and site.yml against one running fleet."""

    def __init__(self, fleet):
        self.fleet = fleet
        self.env = dict(os.environ, **fleet.env(), ANSIBLE_NOCOLOR="1")

    def ping(self, forks=None, env=None):
        return run(["ansible", "-i", self.fleet.inventory, "all", "-m", "ansible.builtin.ping"] + _forks(forks),
                   env=dict(self.env, **(env or {})), cwd=ROOT)

    def site(self, forks=None, env=None):
        return run(["ansible-playbook", "-i", self.fleet.inventory, "playbooks/site.yml",
                    "-e", "zombie_cleaner_dry_run=true"] + _forks(forks), env=dict(self.env, **(env or {})), cwd=ROOT)

    def interleaved(self, rounds, forks=None, cold=False):
        """{'ping': [Run], 'site': [Run]}, in a rotating order; cold: every SSH master closed before each run."""
        runs = {"ping": [], "site": []}
        methods = [("ping", self.ping), ("site", self.site)]
        for index in range(rounds):
            for name, method in methods[index % 2:] + methods[:index % 2]:
                if cold:
                    self.fleet.close_connections()
                runs[name].append(method(forks))
        return runs

    def steps(self):
        """[(step, seconds)] of one site.yml run: start-up, then each play and task until the next event."""
        with tempfile.NamedTemporaryFile(prefix="zc-task-times-", suffix=".jsonl") as record:
            env = {"ANSIBLE_CALLBACK_PLUGINS": CALLBACKS, "ANSIBLE_CALLBACKS_ENABLED": "task_times",
                   "ZC_BENCH_TASK_TIMES": record.name}
            started = time.time()
            total = self.site(env=env).seconds
            with open(record.name) as handle:
                events = [json.loads(text) for text in handle]
        steps = [("start-up, to the first play", events[0]["time"] - started)]
        for event, following in zip(events, events[1:]):
            label = {"play": "play: %s", "task": "task: %s"}.get(event["kind"], "%s") % _short(event["name"])
            steps.append((label, following["time"] - event["time"]))
        steps.append(("end: recap and exit", started + total - events[-1]["time"]))
        return steps


def _short(name):
    """A task's name without the role prefix, the argument-spec validation's without its description."""
    name = name.replace("zombie_cleaner : ", "")
    return name.split(" - ")[0] if name.startswith("Validating arguments") else name


def _forks(forks):
    return ["-f", str(forks)] if forks else []


def with_fleet(size, zombies_per_node, work, footprint):
    """work(FleetRuns) against a fleet of size nodes brought up for it; footprint gets the fleet's own figures:
    seconds to come up, memory per node (KiB, PSS) idle and with every node's SSH session open."""
    with tempfile.TemporaryDirectory(prefix="zc-bench-fleet-") as directory, pid_room(size * zombies_per_node):
        fleet = Fleet(directory)
        started = time.perf_counter()
        fleet.create(size, port=PORT, first_address=FIRST_ADDRESS)
        up = time.perf_counter() - started
        try:
            idle = sum(fleet.memory().values()) / size
            for name in fleet.names if zombies_per_node else []:
                fleet.zombies(name, zombies_per_node)
            runs = FleetRuns(fleet)
            runs.ping()                          # both start with open SSH masters, the state files written
            runs.site()
            result = work(runs)
            if not zombies_per_node:
                footprint.append((size, up, idle, sum(fleet.memory().values()) / size))
            return result
        finally:
            fleet.down()


def ratio_row(label, size, runs, target):
    ping, site = median([r.seconds for r in runs["ping"]]), median([r.seconds for r in runs["site"]])
    cpu = {name: median([r.cpu for r in runs[name]]) / size * 1e3 for name in runs}
    rest = {name: median([r.machine_cpu - r.cpu for r in runs[name]]) / size * 1e3 for name in runs}
    return "| %s | %d | %.2f | %.2f | %.2f | <= %.1f | %s | %.0f | %.0f / %.0f = %.2f | %.0f / %.0f |" % (
        label, size, ping, site, site / ping, target, verdict(site / ping, target), site / size * 1e3,
        cpu["site"], cpu["ping"], cpu["site"] / cpu["ping"], rest["site"], rest["ping"])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quiet", default="20,100", help="quiet fleet sizes; the last one is sized too")
    parser.add_argument("--busy", default="20x2000", help="NODESxZOMBIES for the busy fleet, 0x0 for none")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--sizing-rounds", type=int, default=2, help="0: no sizing runs")
    args = parser.parse_args()
    sizes = [int(text) for text in args.quiet.split(",")]
    busy_nodes, busy_zombies = (int(text) for text in args.busy.split("x"))

    rows, steps, sizing, footprint = [], {}, [], []
    for size in sizes:
        def quiet(runs, size=size):
            measured = runs.interleaved(args.rounds)
            steps["quiet, %d nodes" % size] = runs.steps()
            if size == sizes[-1] and args.sizing_rounds:
                for forks, cold in ((DEFAULT_FORKS, False), (DEFAULT_FORKS, True), (50, False), (50, True)):
                    sized = measured if (forks, cold) == (DEFAULT_FORKS, False) else \
                        runs.interleaved(args.sizing_rounds, forks=forks, cold=cold)
                    sizing.append((forks, cold, sized))
            return measured
        rows.append(ratio_row("quiet", size, with_fleet(size, 0, quiet, footprint), QUIET_TARGET))

    def busy(runs):
        measured = runs.interleaved(args.rounds)
        steps["%d zombies per node, %d nodes" % (busy_zombies, busy_nodes)] = runs.steps()
        return measured
    if busy_nodes:
        rows.append(ratio_row("%d zombies per node" % busy_zombies, busy_nodes,
                              with_fleet(busy_nodes, busy_zombies, busy, footprint), BUSY_TARGET))

    line("## Fleet cost over SSH: site.yml (dry run) vs ansible -m ping, forks %d, median of %d interleaved rounds"
         % (DEFAULT_FORKS, args.rounds))
    line("| fleet | nodes | ping s | site.yml s | site/ping | target | | site.yml per node ms "
         "| controller CPU per node ms, site.yml / ping | the rest of the machine's CPU per node ms (the nodes), "
         "site.yml / ping |")
    line("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for row in rows:
        line(row)
    line()

    columns = list(steps)
    line("## Where site.yml's time goes (one more run per fleet, seconds from each step's start to the next)")
    line("| step | %s |" % " | ".join(columns))
    line("| --- |%s" % (" --- |" * len(columns)))
    labels = []
    for column in columns:
        labels += [label for label, _ in steps[column] if label not in labels]
    for label in labels:
        cells = []
        for column in columns:
            found = [seconds for name, seconds in steps[column] if name == label]
            cells.append("%.2f" % sum(found) if found else "")
        line("| %s | %s |" % (label, " | ".join(cells)))
    line()

    if sizing:
        size = sizes[-1]
        line("## Where one controller ends: site.yml (dry run, quiet) at %d nodes, median of %d (%d at forks %d, open)"
             % (size, args.sizing_rounds, args.rounds, DEFAULT_FORKS))
        line("| forks | SSH connections | ping s | site.yml s | per node ms | controller CPU per node ms "
             "| nodes in one check_interval (5m) |")
        line("| --- | --- | --- | --- | --- | --- | --- |")
        for forks, cold, runs in sizing:
            ping, site = median([r.seconds for r in runs["ping"]]), median([r.seconds for r in runs["site"]])
            cpu = median([r.cpu for r in runs["site"]])
            line("| %d | %s | %.2f | %.2f | %.0f | %.0f | %d |" % (
                forks, "new (ControlPersist expired)" if cold else "open (ControlPersist)", ping, site,
                site / size * 1e3, cpu / size * 1e3, CHECK_INTERVAL / (site / size)))
        line()

    line("## The test fleet itself (tests/fleet/fleet.py): bring-up and memory (PSS of each node's processes)")
    line("| nodes | up in s | per node idle MiB | per node, SSH session open MiB | whole fleet MiB |")
    line("| --- | --- | --- | --- | --- |")
    for size, up, idle, in_session in footprint:
        line("| %d | %.1f | %.1f | %.1f | %.0f |" % (size, up, idle / 1024, in_session / 1024,
                                                     in_session * size / 1024))
    line()


if __name__ == "__main__":
    main()
