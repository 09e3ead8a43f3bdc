"""Shared by the benchmarks: real zombies in bulk, the shipped module_utils, interleaved timing, runs of a
command with its wall time, peak RSS and CPU, and room in the PID space."""

import contextlib
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The code the module ships, imported the way Ansible packs it (ansible.module_utils.zombie_cleaner).
import ansible.module_utils  # noqa: E402

ansible.module_utils.__path__.append(os.path.join(ROOT, "module_utils"))


# The tests' real zombie parent (tests/helpers/zombies.py): a parent holding `count` zombies,
# reaping them all when closed; a context manager.
sys.path.insert(0, os.path.join(ROOT, "tests"))
from helpers.zombies import ZombieParent as Zombies  # noqa: E402,F401


def _terminated(signum, frame):
    raise KeyboardInterrupt("terminated by signal %d" % signum)


# SIGTERM (timeout, kill) unwinds like Ctrl-C: fleets brought down, zombie parents stopped, pid_max put back.
signal.signal(signal.SIGTERM, _terminated)


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


def verdict(value, target, unit=""):
    """'meets', or by how much value misses the target (value should be at most target)."""
    if value <= target:
        return "meets"
    return "MISSES by %s%s (%.1fx the target)" % (("%.2f" % (value - target)).rstrip("0").rstrip("."), unit,
                                                   value / target)


class Run:
    """One finished command: wall seconds, peak RSS (KiB) of the largest process in its tree that was waited
    for, user+system CPU seconds of that tree, the whole machine's busy CPU seconds meanwhile (so
    machine_cpu - cpu is what everything else used: on a test fleet, the nodes' sshd and modules), exit code and
    output."""

    def __init__(self, seconds, maxrss_kib, cpu, machine_cpu, returncode, output):
        self.seconds, self.maxrss_kib, self.cpu, self.machine_cpu, self.returncode, self.output = (
            seconds, maxrss_kib, cpu, machine_cpu, returncode, output)


def machine_busy():
    """CPU seconds the machine has spent working: user, nice, system, irq and softirq of /proc/stat's cpu line
    (not idle, iowait, or steal, the time a hypervisor gave to others)."""
    with open("/proc/stat") as handle:
        user, nice, system, _idle, _iowait, irq, softirq = (int(value) for value in handle.readline().split()[1:8])
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def run(argv, env=None, cwd=None, timeout=900, check=True):
    """Run argv and measure it with wait4(2): the rusage of that child alone (its own and its waited-for
    descendants'), not of whatever else this process ran. Output goes to a temporary file, not a pipe:
    a module result of megabytes cannot stall the run."""
    with tempfile.TemporaryFile() as output:
        busy = machine_busy()
        started = time.perf_counter()
        process = subprocess.Popen(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=output,
                                   stderr=subprocess.STDOUT)
        killer = threading.Timer(timeout, process.kill)
        killer.start()
        try:
            _, status, usage = os.wait4(process.pid, 0)
        except BaseException:                           # interrupted: the command does not outlive the bench
            process.kill()
            os.wait4(process.pid, 0)
            raise
        finally:
            killer.cancel()
        seconds = time.perf_counter() - started
        busy = machine_busy() - busy
        process.returncode = os.waitstatus_to_exitcode(status)     # reaped here, not by Popen
        output.seek(0)
        text = output.read().decode("utf-8", "replace")
    result = Run(seconds, usage.ru_maxrss, usage.ru_utime + usage.ru_stime, busy, process.returncode, text)
    if check and result.returncode != 0:
        raise SystemExit("%s failed (%d):\n%s" % (" ".join(argv), result.returncode, text[-3000:]))
    return result


def tasks_in_use():
    """Every task (process or thread) on the machine: what takes a PID."""
    with open("/proc/loadavg") as handle:
        return int(handle.read().split()[3].split("/")[1])


@contextlib.contextmanager
def pid_room(needed, margin=4096):
    """Make sure `needed` more PIDs fit under kernel.pid_max, raising it for the duration if they do not
    (zombies hold their PIDs; a fleet's zombies take them from the machine's one PID space), and put it
    back afterwards."""
    path = "/proc/sys/kernel/pid_max"
    with open(path) as handle:
        before = int(handle.read())
    wanted = tasks_in_use() + needed + margin
    if wanted <= before:
        yield before
        return
    with open(path, "w") as handle:
        handle.write("%d\n" % wanted)
    line("(kernel.pid_max raised from %d to %d for %d zombies; put back afterwards)" % (before, wanted, needed))
    try:
        yield wanted
    finally:
        with open(path, "w") as handle:
            handle.write("%d\n" % before)


def line(text=""):
    print(text, flush=True)
