"""Shared by the benchmarks: real zombies in bulk, the shipped module_utils, interleaved timing."""

import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The code the module ships, imported the way Ansible packs it (ansible.module_utils.zombie_cleaner).
import ansible.module_utils  # noqa: E402

ansible.module_utils.__path__.append(os.path.join(ROOT, "module_utils"))


# The tests' real zombie parent (tests/helpers/zombies.py): a parent holding `count` zombies,
# reaping them all when closed; a context manager.
sys.path.insert(0, os.path.join(ROOT, "tests"))
from helpers.zombies import ZombieParent as Zombies  # noqa: E402,F401


def process_count():
    return sum(1 for name in os.listdir("/proc") if name.isdigit())


def interleaved(methods, rounds):
    """Run each (name, callable) once per round, in a rotating order; {name: [seconds]}."""
    times = {name: [] for name, _ in methods}
    for index in range(rounds):
        order = methods[index % len(methods):] + methods[:index % len(methods)]
        for name, run in order:
            started = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - started)
    return times


def median(values):
    return statistics.median(values)


def verdict(ratio, target):
    return "meets" if ratio <= target else "MISSES"


def line(text=""):
    print(text, flush=True)
