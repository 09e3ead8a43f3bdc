"""The module run through Ansible, as the operator waits for it: `ansible -m zombie_scan` against one SSH test
fleet node holding 20,000 zombies, beside `ansible -m ping` to the same node and `ps -eo pid,ppid,stat,comm` in
that node (the process table the module reads), interleaved. Target: (module run - ping) / ps at most 0.5,
that is the module costs at most half a `ps` more than Ansible's own round trip. Also the controller's peak RSS
in each run and the size of the result the controller receives (the issue's bound: under 64 KiB).

    python bench/module_run.py [--zombies 20000] [--rounds 5]

The node is a fleet node (tests/fleet/fleet.py), so the controller's processes (ansible, its worker, the ssh
client) and the node's (sshd, the module's python) are separate trees: the peak RSS measured with wait4(2)
over the ansible command is the controller's alone. The module runs as site.yml runs it in a dry run: state,
audit log and metrics written, nothing remediated.
"""

import argparse
import json
import os
import sys
import tempfile

from common import ROOT, interleaved, line, median, pid_room, run, verdict

sys.path.insert(0, os.path.join(ROOT, "tests", "fleet"))
from fleet import Fleet  # noqa: E402

TARGET = 0.5
RESULT_TARGET_KIB = 64
# Addresses and port of its own: never in the way of a test fleet or the fleet bench.
PORT, FIRST_ADDRESS = 2224, 100


def measure(zombies, rounds):
    with tempfile.TemporaryDirectory(prefix="zc-bench-module-") as directory, pid_room(zombies):
        fleet = Fleet(directory)
        fleet.create(1, port=PORT, first_address=FIRST_ADDRESS)
        try:
            made = len(fleet.zombies("node1", zombies))
            var = os.path.join(fleet.node_dir("node1"), "var")
            arguments = json.dumps({"state_path": os.path.join(var, "state.json"), "metrics_textfile_dir": var,
                                    "audit_log_path": os.path.join(var, "audit.log"), "dry_run": True})
            env = dict(os.environ, **fleet.env(), ANSIBLE_NOCOLOR="1")
            adhoc = ["ansible", "-i", fleet.inventory, "node1"]
            commands = {
                "ps": ["nsenter", "--target", str(fleet.node("node1")["init_pid"]), "--pid", "--mount", "--",
                       "ps", "-eo", "pid,ppid,stat,comm"],
                "ping": adhoc + ["-m", "ansible.builtin.ping"],
                "module": adhoc + ["-m", "zombie_scan", "-a", arguments],
            }
            runs = {name: [] for name in commands}

            def runner(name):
                return lambda: runs[name].append(run(commands[name], env=env, cwd=ROOT))

            for name in commands:                        # SSH master open, first state written
                runner(name)()
            runs = {name: [] for name in commands}
            times = interleaved([(name, runner(name)) for name in commands], rounds)
            size = result_size(adhoc, arguments, env)
        finally:
            fleet.down()
    return made, {name: median(values) for name, values in times.items()}, runs, size


def result_size(adhoc, arguments, env):
    """Bytes of the module's result as compact JSON, printed by the default callback as JSON (one more run)."""
    env = dict(env, ANSIBLE_CALLBACK_RESULT_FORMAT="json")
    output = run(adhoc + ["-m", "zombie_scan", "-a", arguments], env=env, cwd=ROOT).output
    result = json.JSONDecoder().raw_decode(output, output.index("=> {") + 3)[0]
    return len(json.dumps(result, separators=(",", ":")))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--zombies", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    made, medians, runs, size = measure(args.zombies, args.rounds)
    peak = {name: max(item.maxrss_kib for item in items) / 1024.0 for name, items in runs.items()}
    line("## The module run through Ansible at %d zombies (one SSH fleet node), median of %d interleaved rounds"
         % (made, args.rounds))
    line("| run | median s | controller peak RSS MiB |")
    line("| --- | --- | --- |")
    line("| `ps -eo pid,ppid,stat,comm` in the node | %.2f | |" % medians["ps"])
    line("| `ansible -m ping` | %.2f | %.1f |" % (medians["ping"], peak["ping"]))
    line("| `ansible -m zombie_scan` (dry run) | %.2f | %.1f |" % (medians["module"], peak["module"]))
    line()
    ratio = (medians["module"] - medians["ping"]) / medians["ps"]
    line("| what | measured | target | |")
    line("| --- | --- | --- | --- |")
    line("| (module run - ping) / ps | (%.2f - %.2f) / %.2f = %.2f | <= %.1f | %s |" % (
        medians["module"], medians["ping"], medians["ps"], ratio, TARGET, verdict(ratio, TARGET)))
    line("| the module's result as JSON | %.1f KiB | < %d KiB | %s |" % (
        size / 1024.0, RESULT_TARGET_KIB, verdict(size / 1024.0, RESULT_TARGET_KIB, " KiB")))
    line("| controller peak RSS, module run / ping run | %.1f / %.1f MiB = %.2f | | |" % (
        peak["module"], peak["ping"], peak["module"] / peak["ping"]))
    line()


if __name__ == "__main__":
    main()
