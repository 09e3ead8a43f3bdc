"""Real zombies: a parent that forks children which exit at once and never waits for them."""

import os
import signal
import subprocess
import sys
import time

import psutil

# The parent script, standard library only (the test fleet runs it inside its nodes too).
PARENT_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "zombie_parent.py")


class ZombieParent:
    """A host process holding `count` real zombies."""

    def __init__(self, count):
        self.process = subprocess.Popen([sys.executable, PARENT_SCRIPT, str(count)], stdout=subprocess.PIPE, text=True)
        self.pid = self.process.pid
        line = self.process.stdout.readline().split()
        self.zombies = [int(pid) for pid in line]
        wait_for(lambda: all(psutil.Process(pid).status() == psutil.STATUS_ZOMBIE for pid in self.zombies),
                 "zombies of %d" % self.pid)

    def close(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(10)
        self.process.stdout.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def wait_for(condition, what, timeout=20.0, interval=0.05):
    deadline = time.monotonic() + timeout
    while True:
        try:
            if condition():
                return
        except (psutil.Error, OSError):
            pass
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for %s" % what)
        time.sleep(interval)


def zombie_pids_psutil():
    """psutil's view of the zombies on this machine (the test oracle)."""
    found = set()
    for proc in psutil.process_iter(["pid", "status"]):
        if proc.info["status"] == psutil.STATUS_ZOMBIE:
            found.add(proc.info["pid"])
    return found


def wait_for_zombies(pid, count, what, at_least=False):
    """Wait until pid has exactly count zombie children (at_least: count or more, and no change for
    a second); the failure says how many it had."""
    seen, stable_since = [], [None]

    def enough():
        now = zombie_children(pid)
        if now != seen:
            seen[:] = now
            stable_since[0] = time.monotonic()
        if not at_least:
            return len(seen) == count
        return len(seen) >= count and time.monotonic() - stable_since[0] >= 1.0
    try:
        wait_for(enough, what)
    except AssertionError:
        raise AssertionError("timed out waiting for %s%d zombies of %d (%s): saw %s" % (
            "at least " if at_least else "", count, pid, what, seen))


def zombie_children(pid):
    """pids of the zombie children of pid, from /proc (works for container inits too)."""
    found = []
    for child in psutil.Process(pid).children():
        try:
            if child.status() == psutil.STATUS_ZOMBIE:
                found.append(child.pid)
        except psutil.NoSuchProcess:
            continue
    return sorted(found)


def start_time(pid):
    with open("/proc/%d/stat" % pid, "rb") as handle:
        return int(handle.read().rsplit(b")", 1)[1].split()[19])


def is_alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
