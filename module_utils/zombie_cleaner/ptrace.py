# -*- coding: utf-8 -*-
# Copyright: zombie-cleaner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A minimal ptrace(2) binding (ctypes, x86_64): seize, interrupt, registers, one system call, detach.

Only what running one syscall inside another process needs. Every call
raises PtraceError with the errno; the caller restores registers and
detaches on every path.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import platform
import signal
import time

PTRACE_GETREGS = 12
PTRACE_SETREGS = 13
PTRACE_CONT = 7
PTRACE_SINGLESTEP = 9
PTRACE_DETACH = 17
PTRACE_SEIZE = 0x4206
PTRACE_INTERRUPT = 0x4207
PTRACE_SECCOMP_GET_FILTER = 0x420C
PTRACE_EVENT_STOP = 128
WALL = 0x40000000                  # __WALL: a traced task is not our child

SYSCALL_INSTRUCTION = b"\x0f\x05"  # x86_64 `syscall`
NR_WAIT4 = 61                      # x86_64
WNOHANG = 1

SUPPORTED_MACHINES = ("x86_64",)

_REGISTER_NAMES = ("r15", "r14", "r13", "r12", "rbp", "rbx", "r11", "r10", "r9", "r8", "rax", "rcx", "rdx", "rsi",
                   "rdi", "orig_rax", "rip", "cs", "eflags", "rsp", "ss", "fs_base", "gs_base", "ds", "es", "fs",
                   "gs")


class Registers(ctypes.Structure):
    """struct user_regs_struct of x86_64."""
    _fields_ = [(name, ctypes.c_ulonglong) for name in _REGISTER_NAMES]

    def copy(self):
        other = Registers()
        ctypes.memmove(ctypes.byref(other), ctypes.byref(self), ctypes.sizeof(self))
        return other

    def same_as(self, other):
        return bytes(self) == bytes(other)


class SockFilter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_ushort), ("jt", ctypes.c_ubyte), ("jf", ctypes.c_ubyte), ("k", ctypes.c_uint)]


class PtraceError(Exception):
    def __init__(self, what, code):
        self.errno = code
        super().__init__("%s: %s" % (what, os.strerror(code) if code else "unexpected"))


def machine_supported():
    return platform.machine() in SUPPORTED_MACHINES


_libc = None


def _ptrace(request, pid, addr, data, what):
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        _libc.ptrace.restype = ctypes.c_long
        _libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p]
    ctypes.set_errno(0)
    result = _libc.ptrace(request, pid, addr, data)
    if result == -1 and ctypes.get_errno():
        raise PtraceError(what, ctypes.get_errno())
    return result


class Tracee:
    """One seized thread. Use as a context manager: leaving it always detaches."""

    def __init__(self, pid, deadline):
        self.pid = pid
        self.deadline = deadline          # time.monotonic() value
        self.attached = False
        self.seized = False               # ever attached: once True, something may have happened
        self.stopped = False
        self.stopped_at = None
        self.suppressed_signals = []      # signals that arrived while we held it: re-sent after detach

    def __enter__(self):
        _ptrace(PTRACE_SEIZE, self.pid, None, None, "PTRACE_SEIZE of pid %d" % self.pid)
        self.attached = self.seized = True
        return self

    def __exit__(self, *exc):
        self.detach()
        return False

    def interrupt(self):
        """Stop the tracee without a visible SIGSTOP (a group-stop-like PTRACE_EVENT_STOP)."""
        _ptrace(PTRACE_INTERRUPT, self.pid, None, None, "PTRACE_INTERRUPT")
        while True:
            sig, event = self._wait_stop()
            if event == PTRACE_EVENT_STOP:
                self.stopped_at = time.monotonic()
                return
            # A signal arrived first (signal-delivery-stop): hold it back, deliver it after we are done.
            self.suppressed_signals.append(sig)
            self._resume_after_signal()

    def _resume_after_signal(self):
        # PTRACE_INTERRUPT stays pending, so the tracee stops again right away; let it run until then.
        _ptrace(PTRACE_CONT, self.pid, None, None, "PTRACE_CONT")   # the signal is held back, not delivered
        self.stopped = False

    def _wait_stop(self):
        """(signal, ptrace event) of the next stop, waiting until the deadline."""
        while True:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG | WALL)
            except ChildProcessError:
                raise PtraceError("pid %d is gone" % self.pid, errno.ESRCH)
            if pid == self.pid:
                if os.WIFSTOPPED(status):
                    self.stopped = True
                    return os.WSTOPSIG(status), status >> 16
                # Exited or killed while we held it.
                self.attached = False
                raise PtraceError("pid %d ended during the injection" % self.pid, errno.ESRCH)
            if time.monotonic() > self.deadline:
                raise PtraceError("pid %d did not stop in time" % self.pid, errno.ETIMEDOUT)
            time.sleep(0.0005)

    def get_registers(self):
        regs = Registers()
        _ptrace(PTRACE_GETREGS, self.pid, None, ctypes.addressof(regs), "PTRACE_GETREGS")
        return regs

    def set_registers(self, regs):
        _ptrace(PTRACE_SETREGS, self.pid, None, ctypes.addressof(regs), "PTRACE_SETREGS")

    def seccomp_filters(self):
        """Raw programs of the tracee's seccomp filters, most recently installed first."""
        programs = []
        for index in range(64):
            try:
                count = _ptrace(PTRACE_SECCOMP_GET_FILTER, self.pid, index, None, "PTRACE_SECCOMP_GET_FILTER")
            except PtraceError as error:
                if error.errno == errno.ENOENT:
                    return programs
                raise
            buffer = (SockFilter * count)()
            _ptrace(PTRACE_SECCOMP_GET_FILTER, self.pid, index, ctypes.addressof(buffer),
                    "PTRACE_SECCOMP_GET_FILTER")
            programs.append([(item.code, item.jt, item.jf, item.k) for item in buffer])
        raise PtraceError("more than 64 seccomp filters", errno.E2BIG)

    def syscall(self, saved, syscall_address, number, args):
        """Run one system call in the tracee from the syscall instruction at syscall_address.

        Returns the raw return value (negative errno on failure). The tracee's
        registers are left modified: the caller restores `saved`.
        """
        regs = saved.copy()
        regs.rax = number
        regs.orig_rax = 0xFFFFFFFFFFFFFFFF     # not inside a syscall: no restart logic on our registers
        regs.rip = syscall_address
        for name, value in zip(("rdi", "rsi", "rdx", "r10", "r8", "r9"), args):
            setattr(regs, name, value & 0xFFFFFFFFFFFFFFFF)
        self.set_registers(regs)
        _ptrace(PTRACE_SINGLESTEP, self.pid, None, None, "PTRACE_SINGLESTEP")
        self.stopped = False
        while True:
            sig, _ = self._wait_stop()
            after = self.get_registers()
            if after.rip == syscall_address + len(SYSCALL_INSTRUCTION):
                if sig != signal.SIGTRAP:
                    self.suppressed_signals.append(sig)
                break
            if sig == signal.SIGTRAP:
                raise PtraceError("single step ended at 0x%x, not after the syscall" % after.rip, errno.EFAULT)
            # A signal arrived before the instruction ran: hold it back and step again.
            self.suppressed_signals.append(sig)
            _ptrace(PTRACE_SINGLESTEP, self.pid, None, None, "PTRACE_SINGLESTEP")
            self.stopped = False
        value = after.rax
        return value - (1 << 64) if value >= 1 << 63 else value

    def detach(self):
        """Detach (the tracee runs on); held-back signals are sent again. Safe to call twice."""
        if not self.attached:
            return
        try:
            _ptrace(PTRACE_DETACH, self.pid, None, None, "PTRACE_DETACH")
        except PtraceError:
            # Not in a ptrace-stop. If it died while we held it, its exit is reported to us first:
            # collect it so its real parent can reap it. Otherwise the kernel detaches it when this
            # process exits; nothing of ours is left in it.
            try:
                os.waitpid(self.pid, os.WNOHANG | WALL)
            except OSError:
                pass
        self.attached = False
        self.stopped = False
        for sig in self.suppressed_signals:
            try:
                os.kill(self.pid, sig)
            except OSError:
                pass


def find_syscall_instruction(pid, proc_root="/proc"):
    """Address of a `syscall` instruction in an executable mapping of pid (the vdso has one)."""
    candidates = []
    with open("%s/%d/maps" % (proc_root, pid)) as maps:
        for line in maps:
            fields = line.split()
            if len(fields) < 2 or "x" not in fields[1]:
                continue
            start, end = (int(value, 16) for value in fields[0].split("-"))
            name = fields[5] if len(fields) > 5 else ""
            # The vdso first: always there, always executable, small.
            candidates.insert(0 if name == "[vdso]" else len(candidates), (start, end, name))
    with open("%s/%d/mem" % (proc_root, pid), "rb", buffering=0) as memory:
        for start, end, name in candidates[:8]:
            try:
                memory.seek(start)
                code = memory.read(min(end - start, 1 << 20))
            except OSError:
                continue
            offset = code.find(SYSCALL_INSTRUCTION)
            if offset >= 0:
                return start + offset, name
    return None, None
