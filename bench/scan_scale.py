"""Scan at scale: the project's /proc scan against ps, psutil and the floor, at 20,000 real zombies,
interleaved in one run; then how scan time grows from 1k to 30k processes.

    python bench/scan_scale.py [--zombies 20000] [--rounds 7] [--sizes 1000,5000,10000,20000,30000]
"""

import argparse
import os
import subprocess

import psutil

from common import Zombies, interleaved, line, median, process_count, verdict
from ansible.module_utils.zombie_cleaner.observe import procfs

TARGETS = {"ps": 0.6, "psutil": 0.3, "floor": 1.3}


def project():
    return procfs.scan("/proc")


def ps():
    return subprocess.run(["ps", "-eo", "pid,ppid,stat,comm"], stdout=subprocess.PIPE, check=True).stdout


def with_psutil():
    psutil.process_iter.cache_clear()          # no Process objects kept from the previous round
    return [proc.info for proc in psutil.process_iter(["pid", "ppid", "status", "name"])]


def floor():
    """The least any scan must do: open and read every /proc/PID/stat, nothing else, with the
    cheapest calls Python has (os.open/os.read: no file object)."""
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                fd = os.open("/proc/" + name + "/stat", os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                continue
            try:
                os.read(fd, 4096)
            except OSError:
                pass
            finally:
                os.close(fd)


def compare(zombies, rounds):
    with Zombies(zombies):
        processes = process_count()
        found = sum(1 for entry in project().values() if entry.state == "Z")
        assert found >= zombies, "the scan found %d zombies, made %d" % (found, zombies)
        times = interleaved([("project", project), ("ps", ps), ("psutil", with_psutil), ("floor", floor)], rounds)
    medians = {name: median(values) for name, values in times.items()}
    line("## Scan of %d processes (%d zombies), median of %d interleaved rounds" % (processes, zombies, rounds))
    line("| method | median ms | per process us |")
    line("| --- | --- | --- |")
    for name, value in medians.items():
        line("| %s | %.1f | %.2f |" % (name, value * 1e3, value / processes * 1e6))
    line()
    line("| ratio | value | target | |")
    line("| --- | --- | --- | --- |")
    ratios = {}
    for other, target in TARGETS.items():
        ratio = medians["project"] / medians[other]
        ratios[other] = ratio
        line("| project/%s | %.2f | <= %.1f | %s |" % (other, ratio, target, verdict(ratio, target)))
    line()
    return medians, ratios


def growth(sizes, rounds):
    line("## Growth: scan time by process count, project and floor interleaved (median of %d)" % rounds)
    line("| processes | project ms | project per process us | floor per process us | project/floor |")
    line("| --- | --- | --- | --- | --- |")
    baseline = process_count()
    for size in sizes:
        with Zombies(max(size - baseline, 0)):
            processes = process_count()
            times = interleaved([("project", project), ("floor", floor)], rounds)
        value, bare = median(times["project"]), median(times["floor"])
        line("| %d | %.1f | %.2f | %.2f | %.2f |" % (processes, value * 1e3, value / processes * 1e6,
                                                    bare / processes * 1e6, value / bare))
    line()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--zombies", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--sizes", default="1000,5000,10000,20000,30000")
    args = parser.parse_args()
    compare(args.zombies, args.rounds)
    growth([int(size) for size in args.sizes.split(",")], args.rounds)


if __name__ == "__main__":
    main()
