# -*- coding: utf-8 -*-
# Copyright: zombie-cleaner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read-only access to a /proc tree.

One pass reads every /proc/PID/stat; everything else (cmdline, cgroup,
status) is read on demand, only for zombies and their ancestors.
Nothing here needs more than the Python standard library.
"""

from __future__ import annotations

import os
from collections import namedtuple

# pid, ppid, state, name, start_time (clock ticks since boot, field 22), num_threads (field 20)
ProcStat = namedtuple("ProcStat", "pid ppid state name start_time num_threads")
ProcStat.__new__.__defaults__ = (1,)


def is_zombie(stat):
    """A real zombie: state Z and a single thread.

    A thread-group leader that called pthread_exit while other threads run
    also reads Z, but it is a live process: num_threads (field 20) says so."""
    return stat is not None and stat.state == "Z" and stat.num_threads == 1


def parse_stat(data):
    """Parse the bytes of /proc/PID/stat into a ProcStat, or None if malformed.

    The name sits between the first '(' and the LAST ')': a process may call
    itself "a) (b" and only the last parenthesis is reliable.
    """
    left = data.find(b"(")
    right = data.rfind(b")")
    if left < 0 or right < left:
        return None
    # After ") ": state ppid pgrp session tty tpgid flags minflt cminflt majflt
    # cmajflt utime stime cutime cstime priority nice threads itrealvalue starttime
    fields = data[right + 2:].split(b" ", 20)
    if len(fields) < 20:
        return None
    try:
        return ProcStat(
            int(data[:left]),
            int(fields[1]),
            fields[0].decode("ascii", "replace"),
            data[left + 1:right].decode("utf-8", "replace"),
            int(fields[19]),
            int(fields[17]),
        )
    except ValueError:
        return None


def read_small(path):
    """The whole content of a small /proc file.

    os.open/os.read, not open(): no buffered file object per file, which is
    about a quarter of the cost of a scan of 20,000 processes."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        data = os.read(fd, 4096)
        if len(data) < 4096:
            return data
        chunks = [data]
        while data:
            data = os.read(fd, 65536)
            chunks.append(data)
        return b"".join(chunks)
    finally:
        os.close(fd)


def read_stat(proc_root, pid):
    """Return the ProcStat of one process, or None if it is gone or unreadable."""
    try:
        return parse_stat(read_small("%s/%d/stat" % (proc_root, pid)))
    except OSError:
        return None


def scan(proc_root="/proc"):
    """One pass over proc_root: {pid: ProcStat} for every readable process.

    Processes that vanish mid-scan are skipped silently: that is the normal
    life of a process table, not an error.
    """
    table = {}
    prefix = proc_root + "/"
    for name in os.listdir(proc_root):
        if not name.isdigit():
            continue
        try:
            data = read_small(prefix + name + "/stat")
        except OSError:
            continue
        entry = parse_stat(data)
        if entry is not None:
            table[entry.pid] = entry
    return table


def read_text(path):
    """A small /proc text file as str. Bytes decoded with errors="replace": a process chooses its own
    comm and mapped file names, and a name that is not UTF-8 must not make the file unreadable."""
    return read_small(path).decode("utf-8", "replace")


def read_cmdline(proc_root, pid):
    """argv of a process as a list of str; [] for zombies, kernel threads, gone."""
    try:
        data = read_small("%s/%d/cmdline" % (proc_root, pid))
    except OSError:
        return []
    if not data:
        return []
    return [part.decode("utf-8", "replace") for part in data.rstrip(b"\0").split(b"\0")]


def alive_zombies(proc_root, zombies):
    """The zombies ({"pid", "start_time"}) that are still those zombies: same start time, state Z."""
    alive = []
    for zombie in zombies:
        stat = read_stat(proc_root, zombie["pid"])
        if is_zombie(stat) and stat.start_time == zombie["start_time"]:
            alive.append(zombie)
    return alive


def is_live(proc_root):
    """True when proc_root is this system's procfs, seen from our own PID namespace.

    A fixture tree (tests) or a stale copy has no /self link to this process:
    its PIDs name nothing real, so nothing may ever be signalled on its word.
    """
    try:
        return os.readlink(os.path.join(proc_root, "self")) == str(os.getpid())
    except OSError:
        return False


def read_cgroup(proc_root, pid):
    """Lines of /proc/PID/cgroup as (hierarchy_id, controllers, path) tuples."""
    try:
        text = read_text("%s/%d/cgroup" % (proc_root, pid))
    except OSError:
        return []
    entries = []
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3:
            entries.append((parts[0], parts[1], parts[2]))
    return entries


def read_status(proc_root, pid):
    """/proc/PID/status as a dict of str -> str (empty if unreadable)."""
    try:
        text = read_text("%s/%d/status" % (proc_root, pid))
    except OSError:
        return {}
    status = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            status[key] = value.strip()
    return status


def _read_int(path):
    try:
        return int(read_text(path).strip())
    except (OSError, ValueError):
        return None


def node_pid_budget(proc_root, table):
    """The node's tasks (every thread takes a PID) against kernel.pid_max and kernel.threads-max, the budget
    the kubelet's pid.available eviction signal watches: {"tasks", "pid_max", "threads_max", "pressure"}."""
    tasks = sum(stat.num_threads for stat in table.values())
    pid_max = _read_int(proc_root + "/sys/kernel/pid_max")
    threads_max = _read_int(proc_root + "/sys/kernel/threads-max")
    limits = [limit for limit in (pid_max, threads_max) if limit]
    return {"tasks": tasks, "pid_max": pid_max, "threads_max": threads_max,
            "pressure": round(tasks / float(min(limits)), 4) if limits else None}


def read_boot_id(proc_root="/proc"):
    """The kernel's boot id: sightings never survive a reboot."""
    try:
        with open(proc_root + "/sys/kernel/random/boot_id", "r") as handle:
            return handle.read().strip()
    except OSError:
        return ""
