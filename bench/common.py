"""Shared by the benchmarks: real zombies in bulk, the shipped module_utils, interleaved timing."""

import os
import signal
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ZOMBIE_PARENT = os.path.join(ROOT, "tests", "helpers", "zombie_parent.py")

# The code the module ships, imported the way Ansible packs it (ansible.module_utils.zombie_cleaner).
import ansible.module_utils  # noqa: E402

ansible.module_utils.__path__.append(os.path.join(ROOT, "module_utils"))


class Zombies:
    """A parent holding `count` real zombies (it reaps them all when closed)."""

    def __init__(self, count):
        self.count = count
        self.process = subprocess.Popen([sys.executable, ZOMBIE_PARENT, str(count)], stdout=subprocess.PIPE, text=True)
        self.pids = [int(pid) for pid in self.process.stdout.readline().split()]
        if len(self.pids) != count:
            raise RuntimeError("made %d of %d zombies" % (len(self.pids), count))
        self.pid = self.process.pid

    def close(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(120)
        self.process.stdout.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


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
