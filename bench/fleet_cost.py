"""Fleet cost: the scheduled run (site.yml, dry run, nothing confirmed) against `ansible -m ping` on
the same SSH test fleet, same inventory and forks, interleaved, at 5, 10 and 20 nodes. Target: the
ratio at most 1.3 (one module round-trip per node).

    python bench/fleet_cost.py [--sizes 5,10,20] [--rounds 5]
"""

import argparse
import os
import subprocess
import sys
import tempfile

from common import ROOT, interleaved, line, median, verdict

sys.path.insert(0, os.path.join(ROOT, "tests", "fleet"))
from fleet import Fleet  # noqa: E402

TARGET = 1.3


def runner(argv, env):
    def run():
        result = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
        if result.returncode != 0:
            raise SystemExit("%s failed:\n%s" % (" ".join(argv), result.stdout[-3000:]))
    return run


def measure(size, rounds):
    with tempfile.TemporaryDirectory(prefix="zc-bench-fleet-") as directory:
        fleet = Fleet(directory)
        # Its own addresses and port: never in the way of a test fleet.
        fleet.create(size, port=2223, first_address=100)
        try:
            env = dict(os.environ, **fleet.env(), ANSIBLE_NOCOLOR="1")
            ping = runner(["ansible", "-i", fleet.inventory, "all", "-m", "ansible.builtin.ping"], env)
            site = runner(["ansible-playbook", "-i", fleet.inventory, "playbooks/site.yml",
                           "-e", "zombie_cleaner_dry_run=true"], env)
            ping()                               # both start with open SSH masters
            site()
            times = interleaved([("ping", ping), ("site", site)], rounds)
        finally:
            fleet.down()
    return median(times["ping"]), median(times["site"])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="5,10,20")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    rows = [(size,) + measure(size, args.rounds) for size in (int(text) for text in args.sizes.split(","))]
    line("## Fleet cost over SSH: site.yml (dry run, nothing confirmed) vs ansible -m ping, median of %d" % args.rounds)
    line("| nodes | ping s | site.yml s | site/ping | target | | site.yml per node ms |")
    line("| --- | --- | --- | --- | --- | --- | --- |")
    for size, ping, site in rows:
        line("| %d | %.2f | %.2f | %.2f | <= %.1f | %s | %.0f |" % (
            size, ping, site, site / ping, TARGET, verdict(site / ping, TARGET), site / size * 1e3))
    line()


if __name__ == "__main__":
    main()
