# -*- coding: utf-8 -*-
# Copyright: zombie-cleaner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reap in place: make the parent that does not reap call wait4 for exactly the zombies seen.

Zero downtime: the parent is stopped with PTRACE_SEIZE + PTRACE_INTERRUPT
(no visible SIGSTOP), its registers saved, one wait4(pid, NULL, WNOHANG,
NULL) per zombie is run from a `syscall` instruction of its own vdso, and
its registers restored exactly before detaching. A parent blocked in a
system call (sleep, read) has it restarted by the kernel as after any
signal. Waiting for each zombie's own pid, not for -1, never takes the exit
status of a child that ended a moment ago and that the application may still
want to collect.

Any doubt before attaching means this rung is skipped and the ladder goes on.
"""

from __future__ import annotations

import errno
import os
import time

from ansible.module_utils.zombie_cleaner import procfs, ptrace, seccomp

# States that rule out attaching: stopped or traced (T, t), dying (Z, X), uninterruptible (D: it would not stop).
_UNSAFE_STATES = {"T": "stopped", "t": "stopped by a tracer", "Z": "exiting", "X": "dead",
                  "D": "in uninterruptible sleep"}


def _state_class(state):
    return "running" if state in ("R", "S", "I") else state


def parent_problem(proc_root, parent):
    """Why the parent must not be attached to, or None. parent: {"pid", "start_time"}."""
    pid = parent["pid"]
    if not ptrace.machine_supported():
        return "architecture %s is not supported (x86_64 only)" % os.uname().machine
    if pid <= 1:
        return "pid %d is the host's init" % pid
    if pid == os.getpid():
        return "the parent is this module"
    if not procfs.is_live(proc_root):
        return "proc_root %s is not this system's live /proc" % proc_root
    stat = procfs.read_stat(proc_root, pid)
    if stat is None or stat.start_time != parent["start_time"]:
        return "pid %d is no longer the parent seen" % pid
    if stat.state in _UNSAFE_STATES:
        return "the parent is %s (state %s)" % (_UNSAFE_STATES[stat.state], stat.state)
    if pid == 2 or stat.ppid == 2:
        return "the parent is a kernel thread"
    status = procfs.read_status(proc_root, pid)
    if status.get("Tgid") != str(pid):
        return "pid %d is not a thread-group leader" % pid
    if status.get("TracerPid", "0") != "0":
        return "the parent is already traced by pid %s" % status["TracerPid"]
    if status.get("Seccomp") == "1":
        return "the parent runs in strict seccomp mode: wait4 would kill it"
    return None


def namespace_pid(proc_root, zombie_pid, parent_levels):
    """The zombie's pid as its parent sees it (wait4 takes pids of the caller's PID namespace).

    parent_levels: the parent's NSpid values, one per PID namespace level."""
    zombie_levels = procfs.read_status(proc_root, zombie_pid).get("NSpid", "").split()
    if not parent_levels or len(zombie_levels) < len(parent_levels):
        return None
    return int(zombie_levels[len(parent_levels) - 1])


def live_targets(proc_root, parent, zombies):
    """[(zombie, pid in the parent's namespace)] of the zombies still there and still the parent's."""
    targets = []
    parent_levels = procfs.read_status(proc_root, parent["pid"]).get("NSpid", "").split()
    for zombie in zombies:
        stat = procfs.read_stat(proc_root, zombie["pid"])
        if stat is None or stat.state != "Z" or stat.start_time != zombie["start_time"] or stat.ppid != parent["pid"]:
            continue
        inner = namespace_pid(proc_root, zombie["pid"], parent_levels)
        if inner:
            targets.append((zombie, inner))
    return targets


def _wait4_args(inner_pid, saved):
    # r8 and r9 are not wait4's, but the kernel hands them to seccomp as args[4] and args[5].
    return [inner_pid, 0, ptrace.WNOHANG, 0, saved.r8, saved.r9]


def reap(proc_root, parent, zombies, timeout, dry_run=False):
    """Reap the zombies of one parent in place. Returns a result dict; never raises for the tracee's sake.

    result: ok, verdict ("safe", "skipped", "failed"), reason, reaped (host pids), stop_seconds,
    seccomp (action per filter), syscall_address.
    """
    started = time.monotonic()
    result = {"parent": dict(parent), "ok": False, "verdict": "skipped", "reason": None, "reaped": [],
              "stop_seconds": None, "seccomp": None, "syscall_address": None, "dry_run": bool(dry_run)}
    problem = parent_problem(proc_root, parent)
    if problem:
        result["reason"] = problem
        return result
    targets = live_targets(proc_root, parent, zombies)
    if not targets:
        result["reason"] = "none of the zombies seen is still a zombie of this parent"
        return result
    try:
        address, mapping = ptrace.find_syscall_instruction(parent["pid"], proc_root)
    except OSError as error:
        result["reason"] = "cannot read the parent's memory maps: %s" % error
        return result
    if address is None:
        result["reason"] = "no syscall instruction in the parent's executable mappings"
        return result
    result["syscall_address"] = "0x%x (%s)" % (address, mapping or "anonymous")
    before = procfs.read_stat(proc_root, parent["pid"])
    deadline = started + timeout
    tracee = ptrace.Tracee(parent["pid"], deadline)
    stop_ended = None
    try:
        with tracee:
            tracee.interrupt()
            saved = tracee.get_registers()
            # Attached and stopped: the pid cannot change hands now. Is it still the process seen?
            now_stat = procfs.read_stat(proc_root, parent["pid"])
            if now_stat is None or now_stat.start_time != parent["start_time"]:
                result["reason"] = "the parent changed while attaching"
                return result
            allowed, result["seccomp"] = _seccomp_verdict(tracee, proc_root, parent["pid"], address, targets, saved)
            if not allowed:
                result["reason"] = "its seccomp filter does not allow wait4: %s" % ", ".join(result["seccomp"])
                return result
            if dry_run:
                result.update(verdict="safe", ok=True, reason="would reap %d zombies in place" % len(targets))
                return result
            try:
                for zombie, inner in targets:
                    if time.monotonic() > deadline:
                        raise ptrace.PtraceError("process_timeout reached", errno.ETIMEDOUT)
                    value = tracee.syscall(saved, address, ptrace.NR_WAIT4, _wait4_args(inner, saved))
                    if value == inner:
                        result["reaped"].append(zombie["pid"])
            finally:
                # Exactly the registers it had: an interrupted syscall is restarted by the kernel.
                tracee.set_registers(saved)
                restored = tracee.get_registers()
                if not restored.same_as(saved):
                    result["restore_mismatch"] = True
            stop_ended = time.monotonic()
    except ptrace.PtraceError as error:
        if not tracee.seized:
            # Refused before anything happened (Yama ptrace_scope 3, a container without CAP_SYS_PTRACE).
            result.update(verdict="skipped", reason="cannot attach: %s" % error)
        elif error.errno == errno.ESRCH and _ends_soon(proc_root, parent):
            result.update(verdict="failed", reason="the parent ended during the injection")
        else:
            result.update(verdict="failed", reason="injection stopped: %s" % error)
    finally:
        tracee.detach()
        if tracee.stopped_at is not None:
            result["stop_seconds"] = round((stop_ended or time.monotonic()) - tracee.stopped_at, 6)
    if result["verdict"] == "failed" or dry_run or result["reason"]:
        return result
    return _verify_after(proc_root, parent, before, targets, result)


def _ends_soon(proc_root, parent, timeout=1.0):
    """True if the parent is gone or dying (a SIGKILL makes ptrace answer ESRCH before /proc shows it)."""
    deadline = time.monotonic() + timeout
    while True:
        stat = procfs.read_stat(proc_root, parent["pid"])
        if stat is None or stat.state in ("Z", "X") or stat.start_time != parent["start_time"]:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)


def _seccomp_verdict(tracee, proc_root, pid, address, targets, saved):
    if procfs.read_status(proc_root, pid).get("Seccomp", "0") == "0":
        return True, []
    try:
        programs = tracee.seccomp_filters()
    except ptrace.PtraceError as error:
        return False, ["filters unreadable (%s)" % error]
    names = []
    for _, inner in targets:
        data = seccomp.seccomp_data(ptrace.NR_WAIT4, seccomp.AUDIT_ARCH_X86_64, address + 2,
                                    _wait4_args(inner, saved))
        allowed, names = seccomp.verdict(programs, data)
        if not allowed:
            return False, names
    return True, names


def _verify_after(proc_root, parent, before, targets, result):
    """Zombies gone, parent the same process in the same state class: otherwise say why."""
    left = procfs.alive_zombies(proc_root, [zombie for zombie, _ in targets])
    after = procfs.read_stat(proc_root, parent["pid"])
    if after is None or after.start_time != parent["start_time"]:
        result.update(verdict="failed", reason="the parent is gone after the injection")
    elif _state_class(after.state) != _state_class(before.state):
        result.update(verdict="failed", reason="the parent's state changed from %s to %s" % (before.state,
                                                                                             after.state))
    elif left:
        result.update(verdict="failed", reason="%d zombies still there after wait4" % len(left))
    elif result.get("restore_mismatch"):
        result.update(verdict="failed", reason="the parent's registers could not be restored exactly")
    else:
        result.update(verdict="safe", ok=True, reason="reaped %d zombies in place" % len(result["reaped"]))
    return result
