# -*- coding: utf-8 -*-
# Copyright: zombie-cleaner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A minimal ptrace(2) binding (ctypes, x86_64): seize, interrupt, registers, one system call, detach.

Only what running one syscall inside another process needs. ptrace binds a
tracee to the tracer *thread*: every call for one Tracee must come from the
thread that seized it, and the end of that thread releases the tracee (the
kernel detaches the tracees of an exiting thread). reaper runs each injection
in a short-lived process of its own (cure/child) for that reason, which also
outlives the module if it must. Stops are reported to every thread of the
tracer's process: nothing else in it may waitpid() the tracee's pid (or -1).

Signals keep their meaning: one that arrives while the tracee is held is
passed through with its own siginfo (PTRACE_CONT / PTRACE_DETACH with the
signal number), never re-sent with kill(); a fault caused by the injected
instruction itself is never delivered and never stepped again.
"""

from __future__ import annotations

import collections
import ctypes
import ctypes.util
import errno
import os
import platform
import signal
import struct
import time

from ansible.module_utils.zombie_cleaner.cure import child

PTRACE_CONT = 7
PTRACE_SINGLESTEP = 9
PTRACE_GETREGS = 12
PTRACE_SETREGS = 13
PTRACE_DETACH = 17
PTRACE_GETSIGINFO = 0x4202
PTRACE_SEIZE = 0x4206
PTRACE_INTERRUPT = 0x4207
PTRACE_PEEKSIGINFO = 0x4209
PTRACE_SECCOMP_GET_FILTER = 0x420C
PTRACE_GET_RSEQ_CONFIGURATION = 0x420F
PTRACE_GET_SYSCALL_USER_DISPATCH_CONFIG = 0x4211   # 0x4210 is the SET request: never that one
PTRACE_EVENT_STOP = 128
WALL = 0x40000000                  # __WALL: a traced task is not our child, nor is a clone without SIGCHLD

USER_CS = 0x33                     # the 64-bit user code segment (0x23 is 32-bit code, even in a 64-bit ELF)
X32_SYSCALL_BIT = 0x40000000
NO_SYSCALL = (1 << 64) - 1         # orig_rax outside a system call
SYSCALL_INSTRUCTION = b"\x0f\x05"  # x86_64 `syscall`
NR_WAIT4 = 61                      # x86_64
NR_MMAP, NR_MPROTECT, NR_MUNMAP = 9, 10, 11
PROT_READ, PROT_EXEC = 1, 4
MAP_PRIVATE, MAP_ANONYMOUS = 0x02, 0x20
SI_KERNEL = 0x80                   # si_code of the SIGTRAP an int3 raises
WNOHANG = 1
AUDIT_ARCH_X86_64 = 0xC000003E

SUPPORTED_MACHINES = ("x86_64",)
# Signals an instruction raises itself. Kernel-made ones (si_code > 0) stopped while our instruction runs are
# ours: never delivered, never stepped again.
SYNCHRONOUS_SIGNALS = frozenset((signal.SIGSEGV, signal.SIGBUS, signal.SIGILL, signal.SIGTRAP, signal.SIGFPE,
                                 signal.SIGSYS))
ARGUMENT_REGISTERS = ("rdi", "rsi", "rdx", "r10", "r8", "r9")

_REGISTER_NAMES = ("r15", "r14", "r13", "r12", "rbp", "rbx", "r11", "r10", "r9", "r8", "rax", "rcx", "rdx", "rsi",
                   "rdi", "orig_rax", "rip", "cs", "eflags", "rsp", "ss", "fs_base", "gs_base", "ds", "es", "fs",
                   "gs")

# kind: "interrupt" (our PTRACE_INTERRUPT), "group" (a job-control stop), "signal" (signal-delivery-stop);
# code: the siginfo si_code of a signal stop (> 0: made by the kernel, <= 0: sent by a process);
# address: its si_addr (for a single-step trap, the instruction pointer after the instruction).
Stop = collections.namedtuple("Stop", "kind sig code address")
RseqConfiguration = collections.namedtuple("RseqConfiguration", "pointer size signature flags")


class Registers(ctypes.Structure):
    """struct user_regs_struct of x86_64."""
    _fields_ = [(name, ctypes.c_ulonglong) for name in _REGISTER_NAMES]

    def copy(self):
        other = Registers()
        ctypes.memmove(ctypes.byref(other), ctypes.byref(self), ctypes.sizeof(self))
        return other

    def same_as(self, other):
        return bytes(self) == bytes(other)


_REGS_SIZE = ctypes.sizeof(Registers)


class SockFilter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_ushort), ("jt", ctypes.c_ubyte), ("jf", ctypes.c_ubyte), ("k", ctypes.c_uint)]


class _Siginfo(ctypes.Structure):
    """siginfo_t (128 bytes) as far as a fault or trap fills it."""
    _fields_ = [("signo", ctypes.c_int), ("errno", ctypes.c_int), ("code", ctypes.c_int), ("pad", ctypes.c_int),
                ("address", ctypes.c_ulonglong), ("rest", ctypes.c_char * 104)]


class _PeekSiginfoArgs(ctypes.Structure):
    _fields_ = [("off", ctypes.c_ulonglong), ("flags", ctypes.c_uint), ("nr", ctypes.c_int)]


_PEEK_BATCH, _PEEK_MAX = 64, 4096       # a thread's own queue holds a few signals; 4096 is read at most
TRAP_WAIT = 0.5                         # seconds a continue to take a queued trap waits before interrupting


class _SyscallUserDispatch(ctypes.Structure):
    _fields_ = [("mode", ctypes.c_ulonglong), ("selector", ctypes.c_ulonglong), ("offset", ctypes.c_ulonglong),
                ("len", ctypes.c_ulonglong)]


class _RseqConfiguration(ctypes.Structure):
    _fields_ = [("rseq_abi_pointer", ctypes.c_ulonglong), ("rseq_abi_size", ctypes.c_uint),
                ("signature", ctypes.c_uint), ("flags", ctypes.c_uint), ("pad", ctypes.c_uint)]


class PtraceError(Exception):
    def __init__(self, what, code):
        self.errno = code
        super().__init__("%s: %s" % (what, os.strerror(code) if code else "unexpected"))


class Aborted(PtraceError):
    """The injected instruction did not end in its own single-step trap.

    stop: the stop seen instead; executed: the syscall ran (value is its result);
    signal: the signal to pass through to the tracee (0: none, or one our instruction caused)."""

    def __init__(self, what, stop, executed, value):
        super().__init__(what, errno.EINTR)
        self.what, self.stop, self.executed, self.value = what, stop, executed, value
        self.signal = stop.sig if stop.kind == "signal" and not _caused_by_us(stop) else 0

    def __str__(self):
        return self.what


_yield = os.sched_yield


def _caused_by_us(stop):
    return stop.sig in SYNCHRONOUS_SIGNALS and stop.code > 0


def machine_supported():
    return platform.machine() in SUPPORTED_MACHINES


def audit_arch(regs):
    """The AUDIT_ARCH seccomp sees for a `syscall` run with these registers, or None if not native x86_64."""
    return AUDIT_ARCH_X86_64 if regs.cs == USER_CS else None


def signed(value):
    return value - (1 << 64) if value >= 1 << 63 else value


_libc = None
_call = None


def load():
    """libc's ptrace, loaded once (find_library runs ldconfig): before forking a tracer, so each does not."""
    global _libc, _call
    if _libc is None:
        _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        _call = _libc.ptrace
        _call.restype = ctypes.c_long
        _call.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_ulong, ctypes.c_ulong]
    return _call


def _ptrace(request, pid, addr, data, what):
    # None of the requests used here can return -1 on success (no PEEK*), so errno is read only then.
    result = (_call or load())(request, pid, addr or 0, data or 0)
    if result == -1:
        raise PtraceError(what, ctypes.get_errno())
    return result


def _status_errno(request, pid, addr):
    """errno of a ptrace request that is expected to fail (0 if it succeeded): no exception on the hot path."""
    return ctypes.get_errno() if (_call or load())(request, pid, addr, 0) == -1 else 0


class Tracee:
    """One seized thread. Use as a context manager, or seize() then detach() in one finally."""

    def __init__(self, pid, deadline, grace=5.0):
        self.pid = pid
        self.deadline = deadline          # time.monotonic() value
        self.grace = grace                # past the deadline, how long a stop is awaited to restore registers
        self.attached = False
        self.seized = False               # ever attached: once True, something may have happened
        self.stopped = False              # in a ptrace-stop now: registers can be read and written
        self.modified = False             # registers other than the tracee's own may be in it
        self.stopped_at = None            # first stop
        self.held_seconds = 0.0           # time the tracee was held away from its own code
        self._held_since = None
        self.passed_signals = []          # signals passed through, each with its own siginfo
        self.step_pending = False         # a trap of ours may still be queued in it (see take_step_trap)
        self.trap_address = None          # its si_addr: our single step's; None: the loop's int3 (SI_KERNEL)
        self.own_registers = None         # the tracee's own registers (as it gets them back), set by the caller
        self.ran_own_code = False         # it ran on while a trap was taken: its registers are current, keep them
        self._regs = Registers()          # scratch for the injection, reused: no allocation per zombie
        self._regs_address = ctypes.addressof(self._regs)
        self._siginfo = _Siginfo()
        self._siginfo_address = ctypes.addressof(self._siginfo)

    def __enter__(self):
        return self.seize()

    def __exit__(self, *exc):
        self.detach()
        return False

    def seize(self):
        _ptrace(PTRACE_SEIZE, self.pid, None, None, "PTRACE_SEIZE of pid %d" % self.pid)
        self.attached = self.seized = True
        return self

    def interrupt(self, deadline=None):
        """Stop the tracee without a visible SIGSTOP; a signal that comes first is passed through.

        Returns the Stop: kind "interrupt", or "group" if a job-control stop came instead."""
        _ptrace(PTRACE_INTERRUPT, self.pid, None, None, "PTRACE_INTERRUPT")
        while True:
            stop = self.wait_stop(self.deadline if deadline is None else deadline)
            if stop.kind != "signal":
                self._hold()
                return stop
            self.cont(stop.sig)

    def cont(self, sig=0):
        """Let the tracee run on; sig (from a signal-delivery-stop) is delivered with its own siginfo."""
        _ptrace(PTRACE_CONT, self.pid, None, sig, "PTRACE_CONT")
        if sig:
            self.passed_signals.append(sig)
        self._running()

    def wait_stop(self, deadline):
        """The next stop; raises ETIMEDOUT after deadline (None: no limit), ESRCH if the tracee ended."""
        spins, waitpid, options = 0, os.waitpid, os.WNOHANG | WALL
        while True:
            try:
                pid, status = waitpid(self.pid, options)
            except ChildProcessError:
                self._gone()
            if pid == self.pid:
                if not os.WIFSTOPPED(status):
                    self._gone()
                self.stopped = True
                return self._classify(os.WSTOPSIG(status), status >> 16)
            if deadline is not None and time.monotonic() > deadline:
                raise PtraceError("pid %d did not stop in time" % self.pid, errno.ETIMEDOUT)
            # A stop usually comes within microseconds: spin first (yielding the CPU), then poll.
            spins += 1
            if spins < 4000:
                _yield()
            else:
                time.sleep(0.001 if spins < 6000 else 0.01)

    def _classify(self, sig, event):
        if event == PTRACE_EVENT_STOP:
            return Stop("interrupt" if sig == signal.SIGTRAP else "group", sig, 0, 0)
        code, address = self.siginfo()
        return Stop("signal", sig, code, address)

    def _gone(self):
        self.attached = self.stopped = False
        self._running()
        raise PtraceError("pid %d ended during the injection" % self.pid, errno.ESRCH)

    def _hold(self):
        if self.stopped_at is None:
            self.stopped_at = time.monotonic()
        if self._held_since is None:
            self._held_since = time.monotonic()

    def _running(self):
        self.stopped = False
        if self._held_since is not None:
            self.held_seconds += time.monotonic() - self._held_since
            self._held_since = None

    def siginfo(self):
        """(si_code, si_addr) of the signal of a signal-delivery-stop."""
        _ptrace(PTRACE_GETSIGINFO, self.pid, None, self._siginfo_address, "PTRACE_GETSIGINFO")
        return self._siginfo.code, self._siginfo.address

    def get_registers(self):
        regs = Registers()
        _ptrace(PTRACE_GETREGS, self.pid, None, ctypes.addressof(regs), "PTRACE_GETREGS")
        return regs

    def set_registers(self, regs):
        _ptrace(PTRACE_SETREGS, self.pid, None, ctypes.addressof(regs), "PTRACE_SETREGS")
        self.modified = True

    def restore(self, regs):
        """Put regs back while stopped; True if the kernel holds exactly them afterwards."""
        self.set_registers(regs)
        exact = self.get_registers().same_as(regs)
        self.modified = not exact
        return exact

    def seccomp_filter_count(self):
        """Filters of the (stopped) tracee; None if it is not in filter mode (the kernel answers EINVAL)."""
        count = 0
        while True:
            code = _status_errno(PTRACE_SECCOMP_GET_FILTER, self.pid, count)
            if code == errno.EINVAL and count == 0:
                return None
            if code == errno.ENOENT:
                return count
            if code:
                raise PtraceError("PTRACE_SECCOMP_GET_FILTER", code)
            count += 1
            if count > 512:
                raise PtraceError("more than 512 seccomp filters", errno.E2BIG)

    def seccomp_unchanged(self, count):
        """True if the tracee still has exactly `count` filters (another thread may add one with TSYNC)."""
        return _status_errno(PTRACE_SECCOMP_GET_FILTER, self.pid, count) == (errno.ENOENT if count else errno.EINVAL)

    def seccomp_filters(self):
        """Raw programs of the tracee's seccomp filters, most recently installed first."""
        programs = []
        for index in range(512):
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
        raise PtraceError("more than 512 seccomp filters", errno.E2BIG)

    def syscall_user_dispatch_mode(self):
        """The stopped thread's syscall user dispatch mode (0: off). PtraceError EIO: a kernel without the request."""
        config = _SyscallUserDispatch()
        _ptrace(PTRACE_GET_SYSCALL_USER_DISPATCH_CONFIG, self.pid, ctypes.sizeof(config), ctypes.addressof(config),
                "PTRACE_GET_SYSCALL_USER_DISPATCH_CONFIG")
        return config.mode

    def rseq_configuration(self):
        config = _RseqConfiguration()
        _ptrace(PTRACE_GET_RSEQ_CONFIGURATION, self.pid, ctypes.sizeof(config), ctypes.addressof(config),
                "PTRACE_GET_RSEQ_CONFIGURATION")
        return RseqConfiguration(config.rseq_abi_pointer, config.rseq_abi_size, config.signature, config.flags)

    def syscall(self, saved, syscall_address, number, args):
        """Run one system call in the stopped tracee from the `syscall` instruction at syscall_address.

        Returns None once it ran (the result is not read). Any stop other than the single-step
        trap right after the instruction raises Aborted. The tracee's registers are
        left modified: the caller restores them while it is stopped. Kept lean: a reap runs it
        once per zombie while the parent waits."""
        self._take_pending_trap()
        regs = self._regs
        ctypes.memmove(self._regs_address, ctypes.addressof(saved), _REGS_SIZE)
        regs.rax, regs.orig_rax, regs.rip = number, NO_SYSCALL, syscall_address
        args = [value & 0xFFFFFFFFFFFFFFFF for value in args] + [0] * (6 - len(args))
        regs.rdi, regs.rsi, regs.rdx, regs.r10, regs.r8, regs.r9 = args
        self.modified = True
        call = _call or load()                # straight to libc: this runs once per zombie while it waits
        if call(PTRACE_SETREGS, self.pid, 0, self._regs_address) == -1:
            raise PtraceError("PTRACE_SETREGS", ctypes.get_errno())
        if call(PTRACE_SINGLESTEP, self.pid, 0, 0) == -1:
            raise PtraceError("PTRACE_SINGLESTEP", ctypes.get_errno())
        self.stopped = False
        stop = self._wait_step()
        after = syscall_address + len(SYSCALL_INSTRUCTION)
        if stop.kind == "signal" and stop.sig == signal.SIGTRAP and stop.code > 0 and stop.address == after:
            # Our trap (the kernel's, si_addr right after the instruction): the call ran. Its result is not
            # read, to keep the parent's stop short: the caller checks the zombie in /proc after the detach.
            # (No earlier trap of ours was queued: _take_pending_trap took it.)
            return None
        _ptrace(PTRACE_GETREGS, self.pid, None, self._regs_address, "PTRACE_GETREGS")
        executed = regs.rip == after
        value = signed(regs.rax) if executed else None
        # Our trap is synchronous: dequeued before any other signal. Only an interrupt or a job-control stop,
        # which the kernel reports before dequeuing signals, can leave it queued behind it.
        if executed and stop.kind != "signal":
            self.step_pending, self.trap_address = True, after
        raise Aborted("the injected syscall was stopped by %s (%s)" % (describe(stop), "after it ran" if executed
                                                                        else "before it ran"),
                      stop, executed, value)

    def call(self, saved, syscall_address, number, args):
        """As syscall(), and returns the call's result (rax, signed): for mmap and munmap, whose result counts."""
        self.syscall(saved, syscall_address, number, args)
        _ptrace(PTRACE_GETREGS, self.pid, None, self._regs_address, "PTRACE_GETREGS")
        return signed(self._regs.rax)

    def run_code(self, regs):
        """Set regs and let the stopped tracee run (PTRACE_CONT) until its next stop: (Stop, registers then).

        For code of ours that ends in int3; the caller tells its trap from anything else. Past the deadline it
        is interrupted and the stop awaited (grace), as for a single step."""
        self._take_pending_trap()
        self.set_registers(regs)
        if (_call or load())(PTRACE_CONT, self.pid, 0, 0) == -1:
            raise PtraceError("PTRACE_CONT", ctypes.get_errno())
        self.stopped = False
        stop = self._wait_step()
        return stop, self.get_registers()

    def _wait_step(self):
        try:
            return self.wait_stop(self.deadline)
        except PtraceError as error:
            if error.errno != errno.ETIMEDOUT:
                raise
        # process_timeout passed mid-step (a throttled or frozen tracee): ask for a stop and wait for it,
        # since registers can be restored only while it is stopped.
        _ptrace(PTRACE_INTERRUPT, self.pid, None, None, "PTRACE_INTERRUPT")
        return self.wait_stop(self.deadline + self.grace)

    def queued_signals(self):
        """(signo, si_code, si_addr) of each signal in the stopped thread's own queue (PTRACE_PEEKSIGINFO)."""
        found, buffer = [], (_Siginfo * _PEEK_BATCH)()
        while len(found) < _PEEK_MAX:
            args = _PeekSiginfoArgs(len(found), 0, _PEEK_BATCH)
            count = _ptrace(PTRACE_PEEKSIGINFO, self.pid, ctypes.addressof(args), ctypes.addressof(buffer),
                            "PTRACE_PEEKSIGINFO")
            found += [(item.signo, item.code, item.address) for item in buffer[:count]]
            if count < _PEEK_BATCH:
                break
        return found

    def our_trap_queued(self):
        """True if our trap waits in the thread's queue: a single step's (the kernel's SIGTRAP with si_addr
        trap_address) or, trap_address None, the loop's int3 (SI_KERNEL)."""
        return any(signo == signal.SIGTRAP and code > 0 and (
            address == self.trap_address if self.trap_address is not None else code == SI_KERNEL)
            for signo, code, address in self.queued_signals())

    def take_step_trap(self):
        """Our trap, if it is still queued (read with PTRACE_PEEKSIGINFO, never guessed: another thread
        ignoring SIGTRAP flushes it, and a continue waiting for it would wait forever with the tracee running).
        The tracee is continued until the kernel dequeues it, in its signal-delivery-stop, never delivered.
        Before each continue it gets its own registers (own_registers): the trap needs none of ours, and should
        the queue be flushed between our read and the continue, it runs its own code, not ours. Interrupt and
        job-control stops on the way are continued through, however many (a job-control stop still in effect
        is put back by the kernel at the detach); a continue that brings no stop within TRAP_WAIT is
        interrupted and the queue read again. Returns a signal of the tracee's own that came instead, to pass
        through (the trap, still queued then, stays pending), or 0. No time limit: detached with the trap still
        queued, the tracee would die of it."""
        while self.our_trap_queued():
            if self.own_registers is not None:
                self.set_registers(self.own_registers)
            _ptrace(PTRACE_CONT, self.pid, None, None, "PTRACE_CONT")
            self.stopped = False
            try:
                stop = self.wait_stop(time.monotonic() + TRAP_WAIT)
            except PtraceError as error:
                if error.errno != errno.ETIMEDOUT:
                    raise
                # It ran its own code meanwhile (the trap was flushed after our read): its registers now are
                # its own and newer than any we hold; the caller must not put older ones back.
                self.ran_own_code = True
                _ptrace(PTRACE_INTERRUPT, self.pid, None, None, "PTRACE_INTERRUPT")
                stop = self.wait_stop(None)
            if stop.kind == "signal" and not (stop.sig == signal.SIGTRAP and stop.code > 0):
                # Not expected while a trap is queued (it comes first); passed through by the caller, with the
                # registers back, never here. Still queued, it is taken at the next call.
                self.step_pending = self.our_trap_queued()
                return stop.sig
        self.step_pending = False
        return 0

    def _take_pending_trap(self):
        """Before a step or a run: a trap of ours still queued would be taken for the next one's."""
        if self.step_pending:
            sig = self.take_step_trap()
            if sig:
                raise Aborted("a signal of its own arrived (%d)" % sig, Stop("signal", sig, 0, 0), False, None)
            if self.ran_own_code:
                raise Aborted("the parent ran its own code while a trap of ours was taken (another thread flushed "
                              "it): nothing more is run", Stop("interrupt", signal.SIGTRAP, 0, 0), False, None)

    def detach(self, sig=0):
        """Detach; sig, from a signal-delivery-stop, is delivered with its own siginfo. Safe to call twice.

        Not in a ptrace-stop, PTRACE_DETACH fails: the end of this thread releases the tracee."""
        if not self.attached:
            return
        try:
            _ptrace(PTRACE_DETACH, self.pid, None, sig, "PTRACE_DETACH")
            self.attached = False
            if sig:
                self.passed_signals.append(sig)
        except PtraceError:
            pass
        self._running()


def describe(stop):
    name = signal.Signals(stop.sig).name if stop.sig in signal.Signals._value2member_map_ else str(stop.sig)
    return {"interrupt": "an interrupt", "group": "a job-control stop (%s)" % name}.get(
        stop.kind, "%s (si_code %d)" % (name, stop.code))


class Unreadable(OSError):
    """A read of the parent's files or memory that did not end within its time (a hung NFS or FUSE file)."""

    def __init__(self, what, timeout):
        super().__init__(errno.ETIMEDOUT, "%s unreadable within %g s" % (what, timeout))
        self.what, self.timeout = what, timeout


READ_TIMEOUT = 2.0                 # seconds a read of the parent's executable or mapped code may take


def bounded(function, what, timeout=None):
    """function() in a child process of its own, waited for `timeout` seconds (READ_TIMEOUT by default).

    For any read that may reach the parent's files: /proc/PID/exe, /proc/PID/maps and /proc/PID/mem of a
    file-backed mapping page in from the file system, a copy of its descriptor (closing it flushes the file), and
    a hung NFS or FUSE server never answers: a FUSE request the server has read is waited for uninterruptibly,
    even by SIGKILL. A thread stuck so would keep the module alive, and with it the output pipe Ansible waits on.
    The child has its own session and none of the module's descriptors (stdio on /dev/null): on time out it is
    left behind, holding nothing, and Unreadable is raised. Its return value or exception (picklable) comes back
    through a pipe and is returned or raised here."""
    timeout = READ_TIMEOUT if timeout is None else timeout
    for _ in (1, 2):
        pid, reader = child.start(lambda send: send(_outcome(function)))
        got = child.answer(reader, time.monotonic() + timeout)
        if got is None:
            raise Unreadable(what, timeout)                # the child stays behind, holding nothing of ours
        how = child.ended(pid, 5.0)                        # it has answered (or died): it ends now
        # A child that ended without an answer died of something outside the read (a read never kills its
        # reader): asked once more, then said with how it ended.
        if got is not child.NO_ANSWER:
            break
    else:
        raise OSError(errno.EIO, "the reading process ended without an answer twice (%s)" % how)
    if isinstance(got, OSError):                           # its answer could not be pickled
        raise got
    ok, value = got
    if not ok:
        raise value
    return value


def _outcome(function):
    try:
        return True, function()
    except BaseException as error:                         # handed to the caller as is
        return False, error


PAGE_SIZE = 4096
_PAGEMAP_PRESENT = 1 << 63


def resident(pid, address, size, proc_root="/proc"):
    """True if every page of [address, address + size) is present in pid's page tables now (/proc/PID/pagemap,
    bit 63): reading it through /proc/PID/mem then needs no I/O. Reading pagemap itself never faults anything
    in. Used for every read made while the parent is stopped: memory that is not certainly resident is not
    read then (a hung file system would hold the parent stopped)."""
    first, last = address // PAGE_SIZE, (address + max(size, 1) - 1) // PAGE_SIZE
    fd = os.open("%s/%d/pagemap" % (proc_root, pid), os.O_RDONLY | os.O_CLOEXEC)
    try:
        data = os.pread(fd, 8 * (last - first + 1), 8 * first)
    finally:
        os.close(fd)
    if len(data) != 8 * (last - first + 1):
        return False
    return all(entry & _PAGEMAP_PRESENT for entry in struct.unpack("<%dQ" % (last - first + 1), data))


def read_memory(pid, address, size, proc_root="/proc", timeout=None):
    """size bytes of pid's memory at address (through /proc/PID/mem: no stop needed); OSError if unmapped.

    Bounded (see bounded): the page may belong to a file on a file system that no longer answers."""
    def read():
        fd = os.open("%s/%d/mem" % (proc_root, pid), os.O_RDONLY | os.O_CLOEXEC)
        try:
            return os.pread(fd, size, address)
        finally:
            os.close(fd)
    data = bounded(read, "pid %d's memory at 0x%x" % (pid, address), timeout)
    if len(data) != size:
        raise OSError(errno.EIO, "short read of pid %d's memory at 0x%x" % (pid, address))
    return data


def find_syscall_instruction(pid, proc_root="/proc", timeout=None):
    """Address of a `syscall` instruction in an executable mapping of pid (the vdso has one).

    Bounded (see bounded): maps and mem need the parent's memory map lock and the mappings after the vdso are
    files, which a hung file system never pages in."""
    return bounded(lambda: _find_syscall_instruction(pid, proc_root), "pid %d's executable mappings" % pid,
                   timeout)


def _find_syscall_instruction(pid, proc_root):
    candidates = []
    with open("%s/%d/maps" % (proc_root, pid), "rb") as maps:    # file names may be any bytes
        for line in maps:
            fields = line.split()
            if len(fields) < 2 or b"x" not in fields[1]:
                continue
            start, end = (int(value, 16) for value in fields[0].split(b"-"))
            name = fields[5].decode("utf-8", "replace") if len(fields) > 5 else ""
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
