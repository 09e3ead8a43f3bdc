# -*- coding: utf-8 -*-
# Copyright: zombie-cleaner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Signal exactly the process that was seen, never a PID that was reused since."""

from __future__ import annotations

import os
import signal

from ansible.module_utils.zombie_cleaner import waiter
from ansible.module_utils.zombie_cleaner.observe import procfs


class Refused(Exception):
    """The signal was not sent: the reason says why (never a crash, never a guess)."""


def is_same_process(proc_root, pid, start_time):
    stat = procfs.read_stat(proc_root, pid)
    return stat is not None and stat.start_time == start_time and not procfs.is_zombie(stat)


def send_exact(proc_root, pid, start_time, signum):
    """Send signum to pid only if it is still the process that started at start_time.

    With pidfd (Linux 5.3+, Python 3.9+) the process is pinned between the
    check and the signal, so a reused PID cannot be hit. Without it the start
    time is checked right before os.kill: the remaining window is microseconds.
    """
    if pid <= 1:
        raise Refused("refusing to signal pid %d" % pid)
    if not procfs.is_live(proc_root):
        raise Refused("proc_root=%r is not this system's live /proc: its pids name nothing to signal" % proc_root)
    if pid == os.getpid():
        raise Refused("refusing to signal this process")
    if not is_same_process(proc_root, pid, start_time):
        raise Refused("pid %d is no longer the process seen (start time %s)" % (pid, start_time))
    pidfd_open = getattr(os, "pidfd_open", None)
    send = getattr(signal, "pidfd_send_signal", None)
    if pidfd_open is None or send is None or proc_root != "/proc":
        os.kill(pid, signum)
        return "kill"
    try:
        fd = pidfd_open(pid)
    except ProcessLookupError:
        raise Refused("pid %d exited before it could be signalled" % pid)
    except OSError:
        if not is_same_process(proc_root, pid, start_time):
            raise Refused("pid %d changed before it could be signalled" % pid)
        os.kill(pid, signum)
        return "kill"
    try:
        # The fd now pins this exact process; check it is still the one seen.
        if not is_same_process(proc_root, pid, start_time):
            raise Refused("pid %d changed before it could be signalled" % pid)
        try:
            send(fd, signum)
        except ProcessLookupError:
            raise Refused("pid %d exited before it could be signalled" % pid)
        return "pidfd"
    finally:
        os.close(fd)


def is_gone(proc_root, pid, start_time):
    """True when the process seen has exited (a zombie or dead) or was reaped."""
    stat = procfs.read_stat(proc_root, pid)
    return stat is None or stat.start_time != start_time or stat.state in ("Z", "X")


def wait_gone(proc_root, pid, start_time, timeout):
    """True once the process seen is gone (exited or reaped), within timeout seconds."""
    return waiter.poll_until(lambda: is_gone(proc_root, pid, start_time), timeout, 0.05)
