# -*- coding: utf-8 -*-
# Copyright: zombie-cleaner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reap in place: make the parent that does not reap call wait4 for exactly the zombies seen.

Zero downtime, and never at the parent's expense. Everything that can be known
without stopping the parent is checked first, and that is all check mode and
dry run do (they never attach): the process seen, a native x86_64 executable,
its seccomp mode, its signal mask, and the system call its leader is blocked in
(calls the kernel does not restart after a ptrace stop are refused: the parent
would see EINTR).

Acting, a short-lived tracer process (a fork of the module, cure/child) seizes the leader (PTRACE_SEIZE +
PTRACE_INTERRUPT, no visible SIGSTOP), checks what only a stopped thread shows
(64-bit code segment, the instruction bytes, an rseq critical section, the
seccomp filters, evaluated once for all the zombies), runs one
wait4(pid, NULL, WNOHANG | __WALL, NULL) per zombie, restores the registers
while it is stopped and detaches. The wait4s run either from a page of our own
mapped in the parent for the time of the reap, one resume for all of them
("loop", 3 zombies or more), or by single steps of a `syscall` instruction of
the parent's own vdso ("steps": few zombies, or no page to be had).
Signals that arrive meanwhile are passed through with their siginfo.

Nothing read may hang the module or hold the parent stopped: reads that may
reach the parent's files (its executable, its mappings and code) are bounded
in time (ptrace.bounded), and while it is stopped only memory that
/proc/PID/pagemap shows resident is read. Check mode takes no copy of
anything of the parent's (no pidfd_getfd).
The end of the tracer releases the parent whatever happened; the module's end
does not end the tracer (SIGKILL included), which finishes on its own. If the
parent ever had to be left attached (registers could not be restored in time:
a parent frozen while it ran our code), the result says so (left_attached) and
the tracer process stays, its tracer all along, to restore them.

Waiting for each zombie's own pid, not for -1, never takes the exit status of a
child that ended a moment ago and that the application may still want.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import signal
import struct
import time

from ansible.module_utils.zombie_cleaner import waiter
from ansible.module_utils.zombie_cleaner.cure import child, procsignal, ptrace, seccomp
from ansible.module_utils.zombie_cleaner.observe import cgroups, procfs

RESTORE_GRACE = 5.0      # past process_timeout, how long the tracer waits for a stop to restore the registers
MAX_ROUNDS = 4           # stops per reap: each signal of the parent's own passed through mid-injection costs one
WAIT4_OPTIONS = ptrace.WNOHANG | ptrace.WALL    # __WALL: children made by clone() without SIGCHLD too
TERMINATION_SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)

# States that rule out attaching: stopped or traced (T, t), dying (Z, X), uninterruptible (D: it would not stop).
_UNSAFE_STATES = {"T": "stopped", "t": "stopped by a tracer", "Z": "exiting", "X": "dead",
                  "D": "in uninterruptible sleep"}

# Blocked in one of these, a thread sees EINTR (or, io_pgetevents, its timeout start again) after any ptrace
# stop, with or without signal handlers (signal(7), "Interruption of system calls ... by stop signals";
# measured on kernel 6.18). Its leader blocked in one, the parent is left alone this run.
NOT_RESTARTED = {232: "epoll_wait", 281: "epoll_pwait", 441: "epoll_pwait2", 128: "rt_sigtimedwait",
                 65: "semop", 220: "semtimedop", 208: "io_getevents", 333: "io_pgetevents", 426: "io_uring_enter"}
# Socket calls (and read/write on a socket) see EINTR only when the socket has a timeout.
SOCKET_RECEIVE = {43: "accept", 288: "accept4", 45: "recvfrom", 47: "recvmsg", 299: "recvmmsg", 0: "read",
                  19: "readv"}
SOCKET_SEND = {42: "connect", 44: "sendto", 46: "sendmsg", 307: "sendmmsg", 1: "write", 20: "writev"}
EINTR_CALLS = {**NOT_RESTARTED, **SOCKET_RECEIVE, **SOCKET_SEND}
# Calls that run with a temporary signal mask (argument index of the mask, None: always): the real mask is put
# back before the return to user mode, so before our step, and /proc shows only the temporary one. Whether the
# real one blocks SIGTRAP (whose forced delivery would reset the parent's handler) cannot be read: refused.
# pselect6 and io_pgetevents take a pointer to {sigset pointer, size}: a non-NULL one is refused unread.
TEMPORARY_MASK_CALLS = {130: ("rt_sigsuspend", None), 271: ("ppoll", 3), 270: ("pselect6", 5),
                        281: ("epoll_pwait", 4), 441: ("epoll_pwait2", 4), 333: ("io_pgetevents", 5),
                        426: ("io_uring_enter", 4)}
SO_RCVTIMEO, SO_SNDTIMEO = 20, 21
ERESTARTSYS, ERESTARTNOINTR, ERESTARTNOHAND, ERESTART_RESTARTBLOCK = 512, 513, 514, 516
RESTART_CODES = (ERESTARTSYS, ERESTARTNOINTR, ERESTARTNOHAND, ERESTART_RESTARTBLOCK)
_SIGTRAP_BIT = 1 << (signal.SIGTRAP - 1)

# Many zombies: one page of our own runs all the wait4s with one resume (see _Injection._inject_loop). With
# r12 = the pid array (int32), r13 = its length and r14 = 0, it runs wait4(pid[r14], NULL, WNOHANG | __WALL,
# NULL) for each (r10, r8 and r9 zeroed: seccomp sees exactly wait4_args), r14 counting the calls made, then
# int3. It writes no memory and uses no stack. Assembled from:
#   loop: cmp r14, r13; jae done; mov edi, [r12 + r14*4]; xor esi, esi; mov edx, 0x40000001;
#         xor r10d, r10d; xor r8d, r8d; xor r9d, r9d; mov eax, 61; syscall; inc r14; jmp loop
#   done: int3
LOOP_CODE = bytes.fromhex("4d39ee7320438b3cb431f6ba010000404531d24531c04531c9b83d0000000f0549ffc6ebdbcc")
LOOP_SYSCALL_END = 0x20          # rip right after the loop's syscall instruction
LOOP_TRAP_END = 0x26             # rip after its int3
LOOP_PIDS = 2048                 # the pid array's offset in the page
LOOP_CHUNK = (ptrace.PAGE_SIZE - LOOP_PIDS) // 4
LOOP_MIN_ZOMBIES = 3             # fewer: the single steps cost less than mmap + munmap
MMAP_ARGS = [0, ptrace.PAGE_SIZE, ptrace.PROT_READ, ptrace.MAP_PRIVATE | ptrace.MAP_ANONYMOUS, -1, 0]
PROT_LOOP = ptrace.PROT_READ | ptrace.PROT_EXEC      # given by mprotect once written: refused under MDWE
UNMAP_TIME = 0.5                 # past process_timeout, how long the page's munmap may take (a throttled parent)
_MASK64 = (1 << 64) - 1


def _state_class(state):
    return "running" if state in ("R", "S", "I") else state


def parent_problem(proc_root, parent, status=None, acting=True, notes=None):
    """Why the parent must not be attached to, or None: only what can be read without stopping it.

    parent: {"pid", "start_time"}. acting False (check mode, dry run): nothing of the parent's is copied
    (see blocked_call_problem); what is left to the real run is appended to notes."""
    pid = parent["pid"]
    problem = _process_problem(proc_root, parent)
    if problem:
        return problem
    status = procfs.read_status(proc_root, pid) if status is None else status
    return (status_problem(status, pid) or executable_problem(proc_root, pid)
            or blocked_call_problem(proc_root, pid, acting, notes))


CGROUP_ROOT = "/sys/fs/cgroup"


def _read_first(path):
    try:
        with open(path) as handle:
            return handle.read()
    except OSError:
        return None


def frozen_problem(proc_root, pid, cgroup_root=CGROUP_ROOT):
    """Why the parent's cgroup is (being) frozen, or None: a paused container (docker/runc pause).

    A frozen task cannot be stopped or given its registers back until it is thawed: if a freeze landed
    while it held injected registers, it would die of them once thawed should the module have ended."""
    state = freezer_state(proc_root, pid, cgroup_root)
    if state == "unknown":
        # Unknown means refuse: every safeguard against a pause would be off unseen.
        return ("the parent's cgroup v1 freezer state cannot be read under %s/freezer (mounted elsewhere? set "
                "cgroup_root)" % cgroup_root)
    if state in ("FROZEN", "FREEZING", "parent freezing"):
        return "the parent's cgroup is frozen (freezer %s: a paused container)" % state
    if state == "frozen":
        return "the parent's cgroup is frozen (a paused container)"
    return None


def freezer_state(proc_root, pid, cgroup_root=CGROUP_ROOT):
    """The freezer's word on the parent's cgroup: cgroup v1 "THAWED", "FREEZING", "FROZEN" (every task frozen)
    or "parent freezing"; cgroup v2 "frozen" (every task frozen) or "thawed"; "unknown" if the parent is in a v1
    freezer cgroup whose state cannot be read; None if it is in no freezer cgroup this can see."""
    entries = procfs.read_cgroup(proc_root, pid)
    v1 = cgroups.cgroup_path(entries, "freezer")
    if v1 is not None and not v1.strip("/"):
        return "THAWED"                    # the root cgroup: v1 cannot freeze it (it has no freezer.state)
    if v1 is not None:
        directory = "%s/freezer%s" % (cgroup_root, v1.rstrip("/"))
        state = _read_first(directory + "/freezer.state")
        if state is None:
            return "unknown"
        state = state.strip()
        if state and state != "THAWED" or (_read_first(directory + "/freezer.parent_freezing") or "0").strip() == "1":
            return state if state and state != "THAWED" else "parent freezing"
        return state or None
    v2 = next((path for hierarchy, controllers, path in entries if hierarchy == "0" and controllers == ""), None)
    if v2 is not None:
        events = _read_first("%s%s/cgroup.events" % (cgroup_root, v2.rstrip("/")))
        if events is not None:
            return "frozen" if "frozen 1" in events else "thawed"
    return None


def _process_problem(proc_root, parent):
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
    frozen = frozen_problem(proc_root, pid)       # a frozen task also reads D: say which
    if frozen:
        return frozen
    if stat.state in _UNSAFE_STATES:
        return "the parent is %s (state %s)" % (_UNSAFE_STATES[stat.state], stat.state)
    if pid == 2 or stat.ppid == 2:
        return "the parent is a kernel thread"
    return None


def status_problem(status, pid):
    if status.get("Tgid") != str(pid):
        return "pid %d is not a thread-group leader (or its status is unreadable)" % pid
    if status.get("TracerPid", "0") != "0":
        return "the parent is already traced by pid %s" % status["TracerPid"]
    return seccomp_mode_problem(status) or sigtrap_problem(status)


def seccomp_mode_problem(status):
    mode = status.get("Seccomp")
    if mode == "1":
        return "the parent runs in strict seccomp mode: wait4 would kill it"
    if mode not in ("0", "2"):
        # Unknown means refuse: a filter that is not evaluated may kill the parent on wait4.
        return "its seccomp mode is unknown (Seccomp: %r in its status)" % mode
    return None


def sigtrap_problem(status):
    """The single step queues a SIGTRAP; the kernel forces that one through (unblocked, handler reset to the
    default) if the parent blocks or ignores SIGTRAP, which would change the parent for good."""
    try:
        trap = (int(status["SigBlk"], 16) | int(status["SigIgn"], 16)) & _SIGTRAP_BIT
    except (KeyError, ValueError):
        return "its signal mask is unreadable"
    return "it blocks or ignores SIGTRAP, which a single step would reset" if trap else None


def executable_problem(proc_root, pid, timeout=None):
    """Only a native x86_64 executable: a 32-bit one runs a different system call table (61 is chroot).

    The file is on the parent's file system, which may be a hung NFS or FUSE mount: the read is bounded
    (ptrace.bounded) and one that does not end in time refuses."""
    def read_header():
        with open("%s/%d/exe" % (proc_root, pid), "rb") as handle:
            return handle.read(20)
    try:
        header = ptrace.bounded(read_header, "its executable", timeout)
    except OSError as error:
        return "its executable is unreadable (%s)" % error.strerror
    if len(header) < 20 or header[:4] != b"\x7fELF":
        return "its executable is not an ELF file"
    elf_class, machine = header[4], struct.unpack_from("<H", header, 18)[0]
    if elf_class == 2 and machine == 62 and header[5] == 1:
        return None
    kind = {(1, 3): "32-bit i386", (1, 62): "x32"}.get((elf_class, machine), "ELF class %d, machine %d" % (
        elf_class, machine))
    return "its executable is %s, not x86_64: only the native ABI is injected" % kind


def blocked_call_problem(proc_root, pid, acting=True, notes=None):
    """Refuse a leader blocked in a system call that a ptrace stop would end with EINTR (/proc/PID/syscall).

    acting False (check mode, dry run): the timeout of the socket it is blocked on is not read (that takes a
    copy of the parent's descriptor, see _socket_timeout); notes says it is read when acting."""
    try:
        fields = procfs.read_text("%s/%d/syscall" % (proc_root, pid)).split()
    except OSError as error:
        return "its system call is unreadable (%s)" % error.strerror
    if not fields or fields[0] in ("running", "-1"):
        return None
    number, args, pc = int(fields[0]), [int(value, 16) for value in fields[1:7]], int(fields[-1], 16)
    if number & ptrace.X32_SYSCALL_BIT:
        return "its leader is blocked in an x32 system call"
    try:
        entered = ptrace.read_memory(pid, pc - 2, 2, proc_root)
    except ptrace.Unreadable as error:
        return "its leader's code is %s (a hung file system?)" % error.strerror
    except OSError:
        entered = b""
    if entered != ptrace.SYSCALL_INSTRUCTION:
        return "its leader is blocked in a system call not entered with a 64-bit syscall instruction"
    if number in NOT_RESTARTED:
        return ("its leader is blocked in %s, which a ptrace stop ends with EINTR: left alone this run"
                % NOT_RESTARTED[number])
    return temporary_mask_problem(number, args) or _socket_problem(proc_root, pid, number, args[0], acting, notes)


def temporary_mask_problem(number, args):
    """A leader in a call that swapped in a temporary signal mask (see TEMPORARY_MASK_CALLS), or None."""
    if number not in TEMPORARY_MASK_CALLS:
        return None
    name, index = TEMPORARY_MASK_CALLS[number]
    if index is None or args[index]:
        return ("its leader is blocked in %s with a temporary signal mask: its real mask, put back before our "
                "step, cannot be read (a blocked SIGTRAP would be reset): left alone this run" % name)
    return None


def _socket_problem(proc_root, pid, number, fd, acting=True, notes=None):
    option = SO_RCVTIMEO if number in SOCKET_RECEIVE else SO_SNDTIMEO if number in SOCKET_SEND else None
    if option is None:
        return None
    name = (SOCKET_RECEIVE if option == SO_RCVTIMEO else SOCKET_SEND)[number]
    try:
        if not os.readlink("%s/%d/fd/%d" % (proc_root, pid, fd)).startswith("socket:"):
            return None
    except OSError as error:
        return "its leader is blocked in %s and its socket's timeout is unreadable (%s)" % (name, error.strerror)
    retag = socket_retag_problem(proc_root)
    if retag:
        return ("its leader is blocked in %s on a socket whose timeout cannot be read without changing the "
                "socket: %s; unknown means refuse: left alone this run" % (name, retag))
    if not acting:
        if notes is not None:
            notes.append("its leader is blocked in %s on a socket, whose timeout is read when acting" % name)
        return None
    try:
        timeout = _socket_timeout(proc_root, pid, fd, option)
    except OSError as error:
        return "its leader is blocked in %s and its socket's timeout is unreadable (%s)" % (name, error.strerror)
    if timeout:
        return ("its leader is blocked in %s on a socket with a timeout, which a ptrace stop ends with EINTR: "
                "left alone this run" % name)
    return None


NET_CGROUP_CONTROLLERS = frozenset(("net_cls", "net_prio"))


def socket_retag_problem(proc_root="/proc"):
    """Why a copy of a parent's socket descriptor would change the socket, or None.

    The kernel hands a received socket descriptor (SCM_RIGHTS, pidfd_getfd: receive_fd -> __receive_sock)
    to sock_update_classid and sock_update_netprioidx, which re-tag the socket with the *receiver's* cgroup v1
    net_cls classid and net_prio index: the parent's traffic would be shaped or prioritised as this module's
    from then on. No other interface shows SO_RCVTIMEO/SO_SNDTIMEO (sock_diag does not), so while either
    controller is bound to a v1 hierarchy the descriptor is not copied and the timeout is unknown. The
    hierarchies are global: this module's own /proc/self/cgroup lists every v1 hierarchy, and /proc/cgroups
    (where the kernel still has it) gives each controller's hierarchy; unreadable means refuse."""
    try:
        text = procfs.read_text("%s/self/cgroup" % proc_root)
    except OSError as error:
        return "whether cgroup v1 net_cls or net_prio is in use is unknown (%s)" % error.strerror
    bound = set()
    for line in text.splitlines():
        hierarchy, _, rest = line.partition(":")
        if hierarchy != "0":
            bound.update(rest.partition(":")[0].split(","))
    try:
        for line in procfs.read_text("%s/cgroups" % proc_root).splitlines():
            fields = line.split()
            if len(fields) >= 2 and not line.startswith("#") and fields[1] != "0":
                bound.add(fields[0])
    except OSError:
        pass                                      # gone in newer kernels: /proc/self/cgroup is enough
    used = sorted(bound & NET_CGROUP_CONTROLLERS)
    if used:
        return ("cgroup v1 %s is in use on this node, and a copy of the descriptor (pidfd_getfd) would re-tag "
                "the socket with this module's %s" % (" and ".join(used), " and ".join(
                    {"net_cls": "classid", "net_prio": "priority index"}[name] for name in used)))
    return None


def _socket_timeout(proc_root, pid, fd, option):
    """The socket's SO_RCVTIMEO/SO_SNDTIMEO: True if it has one.

    A copy of the descriptor (pidfd_getfd) is read and closed: the parent is not stopped. Called only when
    acting, and only when socket_retag_problem found nothing: then the copy changes nothing of the socket's.
    All of it in a child process (ptrace.bounded): another thread of the parent can put a FUSE file in that slot
    between the readlink and the copy, and closing the copy would then wait on the file system."""
    return ptrace.bounded(lambda: _copied_socket_timeout(pid, fd, option), "its socket")


def _copied_socket_timeout(pid, fd, option):
    libc = ctypes.CDLL(None, use_errno=True)
    pidfd = _checked(libc.syscall(434, pid, 0))          # pidfd_open (os.pidfd_open needs Python 3.9)
    try:
        copy = _checked(libc.syscall(438, pidfd, fd, 0))  # pidfd_getfd
    finally:
        os.close(pidfd)
    try:
        value, size = ctypes.create_string_buffer(16), ctypes.c_uint(16)
        _checked(libc.getsockopt(copy, 1, option, value, ctypes.byref(size)))        # SOL_SOCKET
        return any(value.raw[:size.value])
    finally:
        os.close(copy)


def _checked(result):
    if result < 0:
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
    return result


def namespace_pid(proc_root, zombie_pid, parent_levels):
    """The zombie's pid as its parent sees it (wait4 takes pids of the caller's PID namespace).

    parent_levels: the parent's NSpid values, one per PID namespace level."""
    zombie_levels = procfs.read_status(proc_root, zombie_pid).get("NSpid", "").split()
    if not parent_levels or len(zombie_levels) < len(parent_levels):
        return None
    return int(zombie_levels[len(parent_levels) - 1])


def live_targets(proc_root, parent, zombies, parent_status=None):
    """[(zombie, pid in the parent's namespace)] of the zombies still there and still the parent's."""
    targets = []
    if parent_status is None:
        parent_status = procfs.read_status(proc_root, parent["pid"])
    parent_levels = parent_status.get("NSpid", "").split()
    for zombie in zombies:
        stat = procfs.read_stat(proc_root, zombie["pid"])
        if not procfs.is_zombie(stat) or stat.start_time != zombie["start_time"] or stat.ppid != parent["pid"]:
            continue
        inner = namespace_pid(proc_root, zombie["pid"], parent_levels)
        if inner:
            targets.append((zombie, inner))
    return targets


def wait4_args(inner_pid):
    # All six argument registers are set: seccomp sees exactly these, whatever the parent had in r8 and r9.
    return [inner_pid, 0, WAIT4_OPTIONS, 0, 0, 0]


def plan(proc_root, parent, zombies, acting=True):
    """(problem, plan) from what can be read without stopping the parent: all that check mode sees.

    acting False (check mode, dry run): nothing of the parent's is copied either; plan["notes"] says what
    is left to the real run."""
    status = procfs.read_status(proc_root, parent["pid"])
    notes = []
    problem = parent_problem(proc_root, parent, status, acting, notes)
    if problem:
        return problem, None
    targets = live_targets(proc_root, parent, zombies, status)
    if not targets:
        return "none of the zombies seen is still a zombie of this parent", None
    try:
        address, mapping = ptrace.find_syscall_instruction(parent["pid"], proc_root)
    except OSError as error:
        return "cannot read the parent's memory maps: %s" % error, None
    if address is None:
        return "no syscall instruction in the parent's executable mappings", None
    if status.get("Seccomp") == "2":
        notes.insert(0, "its seccomp filter is evaluated when acting")
    return None, {"targets": targets, "address": address, "mapping": mapping or "anonymous",
                  "seccomp_mode": status.get("Seccomp"), "notes": notes}


def reap(proc_root, parent, zombies, timeout, dry_run=False):
    """Reap the zombies of one parent in place. Returns a result dict; never raises for the tracee's sake.

    result: ok, verdict ("safe", "skipped", "failed"), reason, reaped (host pids), stop_seconds (time the
    parent was held), inject_seconds (the wait4 calls alone), seccomp (action per filter), syscall_address,
    adjustments (what was restored differently, as the kernel would have), signals_passed, rounds,
    way ("loop", "steps", None if nothing ran), loop_refused (why not the loop), page_left (our page's address
    if it could not be unmapped: a 4 KiB anonymous mapping left in the parent, also said in reason), and
    left_attached: True if the parent could not be released in time, an alert (the verdict is "failed").
    dry_run never attaches: the seccomp filter is evaluated only when acting.
    """
    started = time.monotonic()
    result = {"parent": dict(parent), "ok": False, "verdict": "skipped", "reason": None, "reaped": [],
              "stop_seconds": None, "inject_seconds": None, "seccomp": None, "syscall_address": None,
              "adjustments": [], "signals_passed": [], "rounds": 0, "left_attached": False,
              "way": None, "loop_refused": None, "page_left": None, "tracer": None,
              "dry_run": bool(dry_run)}
    problem, found = plan(proc_root, parent, zombies, acting=not dry_run)
    if problem:
        result["reason"] = problem
    elif dry_run:
        result.update(verdict="safe", ok=True, reason="; ".join(
            ["would reap %d zombies in place" % len(found["targets"])] + found["notes"]))
    else:
        _act(proc_root, parent, found, started + timeout, result)
    return result


@contextlib.contextmanager
def termination_signals_blocked():
    """SIGTERM, SIGHUP and SIGINT held back in this thread and the threads it starts meanwhile.

    The tracer process forked meanwhile inherits the mask: nothing but SIGKILL ends it while a parent holds
    injected registers (and SIGKILL reaches it only if sent to it: it has a session of its own). The module
    holds them back too, so that a reap under way is reported. Signal masks are per thread: a caller that
    reaps from worker threads should enter this in the main thread before starting them."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, TERMINATION_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


TRACERS = []     # tracer processes the module stopped waiting for (still at work): polled, never killed


def _act(proc_root, parent, found, deadline, result):
    result["syscall_address"] = "0x%x (%s)" % (found["address"], found["mapping"])
    before = procfs.read_stat(proc_root, parent["pid"])
    injection = _Injection(proc_root, parent, found, deadline)
    _poll_tracers()
    ptrace.load()
    with termination_signals_blocked():          # inherited by the tracer: it never dies of them
        try:
            pid, reader = child.start(injection.trace)
        except OSError as error:
            result["reason"] = "cannot start the tracer process: %s" % error
            return
        # The tracer's own worst case: its grace for the stop, and its munmap's, past process_timeout.
        answer = child.answer(reader, deadline + RESTORE_GRACE + UNMAP_TIME + 1.0)
    result.update(_from_tracer(pid, answer))
    if result["verdict"] == "safe":
        _verify_after(proc_root, parent, before, injection.targets, result)
    if result["page_left"]:
        result["reason"] += "; " + result["page_left"]


def _from_tracer(pid, answer):
    """The tracer process's answer, or what its silence means. One that waits on is left to its work."""
    if answer is None:
        TRACERS.append(pid)
        return {"verdict": "failed", "left_attached": True, "tracer": pid,
                "reason": "LEFT ATTACHED: the tracer process %d did not answer within %g s past process_timeout; "
                          "it waits on, and restores the registers at the parent's next stop" % (
                              pid, RESTORE_GRACE + UNMAP_TIME)}
    if not isinstance(answer, dict):
        # Killed from outside (nothing of ours ends it so), or an answer it could not send whole: the kernel
        # released the parent as it was when the tracer ended.
        return {"verdict": "failed", "left_attached": True,
                "reason": "LEFT ATTACHED?: the tracer process %d ended without an answer (%s): whether the parent "
                          "got its registers back is unknown" % (
                              pid, answer if isinstance(answer, OSError) else child.ended(pid, 5.0))}
    if answer.get("tracer") is not None or child.ended(pid, 5.0) is None:
        TRACERS.append(pid)
    return answer


def _poll_tracers():
    TRACERS[:] = [pid for pid in TRACERS if child.ended(pid) is None]


class _Injection:
    """One parent, from seize to detach, all in the tracer process (trace)."""

    def __init__(self, proc_root, parent, found, deadline):
        self.proc_root, self.pid, self.parent = proc_root, parent["pid"], parent
        self.targets, self.remaining = found["targets"], list(found["targets"])
        self.address, self.deadline = found["address"], deadline
        self.tracee = ptrace.Tracee(self.pid, deadline, RESTORE_GRACE)
        self.tid = self.send = None      # the tracer process's pid, and how it answers the module
        self.saved = self.final = None    # the leader's registers at this round's stop; what it gets back
        self.final_applied = True
        self.executed, self.adjustments, self.seccomp_names = [], [], None
        self.filter_count, self.threads, self.rounds, self.inject_seconds = 0, 2, 0, 0.0
        self.pass_sig = 0
        self.skip_reason = self.fail_reason = self.error = None
        self.page_unverified = False     # our page could not be read back: never unmapped, reported
        self.restore_mismatch = False
        self._mem = self._mem_rw = None
        self.programs, self.wait4_loads = [], set()
        self.way = None                  # "loop" once the page ran, "steps" when single steps are used
        self.loop_refusal = None         # why not the loop
        self.page = None                 # the address of our page while it is mapped in the parent
        self.page_ready = False          # its code written and the page made executable
        self.code_written = False        # its code written (and read back): from then on it is read back
        self.waits_on = None             # why it answered before the parent had its registers back
        self.tracer_error = None         # an exception of our own code in the tracer
        # What seccomp is asked about each wait4 from the vdso, made before the parent is stopped.
        self.wait4_datas = [seccomp.seccomp_data(ptrace.NR_WAIT4, seccomp.AUDIT_ARCH_X86_64, self.address + 2,
                                                 wait4_args(inner)) for _, inner in self.targets]
        self.page_error = None           # why it could not be unmapped

    def trace(self, send):
        """The tracer process's work (child.start): the injection, then its answer to the module. An answer sent
        before the end (see _await_stop) is the only one."""
        self.send, self.tid = send, os.getpid()
        try:
            self.run()
        except BaseException as error:               # the parent was released in run's finally
            self.tracer_error = "the tracer failed: %r" % (error,)
        self._answer()

    def _answer(self):
        """Never raises: the tracer goes on to give the registers back whether the module listens or not."""
        try:
            result = {}
            self.report(result)
        except Exception as error:
            result = {"verdict": "failed", "left_attached": self.waits_on is not None,
                      "reason": "the tracer could not say how it went: %r" % (error,)}
        self.send(result)

    def run(self):
        try:
            self.tracee.seize()
            self._rounds()
        except ptrace.PtraceError as error:
            self.error = self.error or error
        finally:
            self._release()

    def _work_left(self):
        # Our page still mapped, and not yet found impossible to unmap, is work left too.
        return bool(self.remaining) or (self.page is not None and self.page_error is None)

    def _rounds(self):
        while self._work_left():
            # A page still mapped gets two rounds more to be unmapped in.
            if self.rounds >= MAX_ROUNDS + (2 if self.page is not None else 0):
                self.fail_reason = "signals kept arriving: stopped %d times" % self.rounds
                return
            self.rounds += 1
            stop = self.tracee.interrupt()
            if stop.kind == "group":
                self.skip_reason = "the parent was stopped by signal %d meanwhile: left stopped" % stop.sig
                return
            self.saved = self.tracee.get_registers()
            self.final, self.final_applied = self.saved.copy(), False
            self.tracee.own_registers = self.final          # what a trap of ours is taken with (adjusted too)
            self.tracee.ran_own_code = False                # registers just read: its own, current
            self.skip_reason = self._prepare()
            if self.skip_reason:
                return
            sig = self._inject()
            if not sig or not self._work_left() or self.fail_reason:
                self.pass_sig = sig
                return
            # A signal of the parent's own: registers back, then delivered with its siginfo; stop again.
            self._restore()
            self.tracee.cont(sig)
            self.saved = self.final = self.tracee.own_registers = None

    def _prepare(self):
        """What only the stopped leader shows; also sets the registers it gets back (self.final)."""
        first = self.rounds == 1
        # After a signal of its own was passed through, the stop can be inside its handler, whose mask may block
        # SIGTRAP: the first round reads it in _seccomp_problem, every later one here.
        return ((first and self._identity_problem()) or abi_problem(self.saved)
                or (first and self._seccomp_problem()) or (first and self._dispatch_problem())
                or (not first and sigtrap_problem(procfs.read_status(self.proc_root, self.pid)))
                or self._own_fault_problem()
                or self._syscall_problem()
                or self._rseq_problem() or self._instruction_problem())

    def _own_fault_problem(self):
        """A fault or trap of the parent's own queued behind our stop (the kernel reports the stop first): our
        first step would dequeue it, and it would be taken for ours and never delivered. Left to it."""
        if self.tracee.step_pending:
            return None                  # ours, taken before anything else runs (ptrace.Tracee.take_step_trap)
        for signo, code, _ in self.tracee.queued_signals():
            if signo in ptrace.SYNCHRONOUS_SIGNALS and code > 0:
                return "a fault or trap of its own (signal %d) is pending: left to it" % signo
        return None

    def _dispatch_problem(self):
        """Syscall user dispatch (PR_SET_SYSCALL_USER_DISPATCH, as Wine uses it): once its selector, the parent's
        own memory, says BLOCK, our `syscall` becomes a forced SIGSYS, which kills the parent or resets a blocked
        or ignored SIGSYS for good. The selector can change at any moment: dispatch on at all is refused. A kernel
        without the request (EIO) cannot tell: then only a parent that blocks or ignores SIGSYS is refused."""
        try:
            mode = self.tracee.syscall_user_dispatch_mode()
        except ptrace.PtraceError as error:
            if error.errno != errno.EIO:
                return "its syscall user dispatch cannot be read (%s)" % error
            status = procfs.read_status(self.proc_root, self.pid)
            try:
                sigsys = (int(status["SigBlk"], 16) | int(status["SigIgn"], 16)) & (1 << (signal.SIGSYS - 1))
            except (KeyError, ValueError):
                return "its signal mask is unreadable"
            return "it blocks or ignores SIGSYS, which syscall user dispatch could reset" if sigsys else None
        if mode:
            return "it uses syscall user dispatch (mode %d): a `syscall` of ours could be turned into SIGSYS" % mode
        return None

    def _identity_problem(self):
        # Attached and stopped: the pid cannot change hands now. Is it still the process seen?
        stat = procfs.read_stat(self.proc_root, self.pid)
        if stat is None or stat.start_time != self.parent["start_time"]:
            return "the parent changed while attaching"
        self._mem = os.open("%s/%d/mem" % (self.proc_root, self.pid), os.O_RDONLY | os.O_CLOEXEC)
        return None

    def _read(self, address, size):
        """The stopped parent's memory, only if certainly resident (see ptrace.resident): a page that must come
        from a file would hold the parent stopped as long as its file system takes, forever if it hangs."""
        if not ptrace.resident(self.pid, address, size, self.proc_root):
            raise OSError(errno.EAGAIN, "the parent's memory at 0x%x is not resident: not read while it is "
                                        "stopped" % address)
        data = os.pread(self._mem, size, address)
        if len(data) != size:
            raise OSError(errno.EIO, "short read")
        return data

    def _seccomp_problem(self):
        """The mode from the stopped thread itself (status and ptrace must agree), filters evaluated once."""
        status = procfs.read_status(self.proc_root, self.pid)
        problem = seccomp_mode_problem(status) or sigtrap_problem(status)
        if problem:
            return problem
        # While the leader is stopped only another thread can add a filter (SECCOMP_FILTER_FLAG_TSYNC).
        self.threads = int(status.get("Threads", "2") or 2)
        try:
            count = self.tracee.seccomp_filter_count()
        except ptrace.PtraceError as error:
            if error.errno != errno.EIO or status["Seccomp"] != "0":
                return "its seccomp filters cannot be read (%s)" % error
            # A kernel without PTRACE_SECCOMP_GET_FILTER (no CONFIG_CHECKPOINT_RESTORE): the status, read
            # while the leader is stopped, is all there is.
            self.filter_count = None
            return None
        if (count is not None) != (status["Seccomp"] == "2"):
            return "its seccomp mode is unclear (status says %s, ptrace %s)" % (
                status["Seccomp"], "filter" if count is not None else "no filter")
        self.filter_count = count or 0
        return self._filter_problem() if count else None

    def _filter_problem(self):
        self.programs = programs = self.tracee.seccomp_filters()
        arch = ptrace.audit_arch(self.saved)
        if arch == seccomp.AUDIT_ARCH_X86_64 and len(self.remaining) == len(self.targets):
            datas = self.wait4_datas            # made before the stop (0.6 ms for 300 zombies)
        else:
            datas = [seccomp.seccomp_data(ptrace.NR_WAIT4, arch, self.address + 2, wait4_args(inner))
                     for _, inner in self.remaining]
        allowed, self.seccomp_names, _ = seccomp.verdict_for_all(programs, datas, self.wait4_loads)
        if not allowed:
            return "its seccomp filter does not allow wait4: %s" % ", ".join(self.seccomp_names)
        return None

    def _syscall_problem(self):
        """In a system call: the kernel restarts it by stepping back over a 64-bit `syscall`; if our stop made
        it fail with EINTR (it entered after the check), it is made to restart unless a handler runs."""
        regs = self.saved
        if regs.orig_rax == ptrace.NO_SYSCALL:
            return None
        masked = temporary_mask_problem(regs.orig_rax, [regs.rdi, regs.rsi, regs.rdx, regs.r10, regs.r8, regs.r9])
        if masked:
            return masked
        error = -ptrace.signed(regs.rax)
        # At a system call's exit rcx holds the return address: a signal frame or other code does not match.
        ours = error == errno.EINTR and regs.orig_rax in EINTR_CALLS and regs.rcx == regs.rip
        if error not in RESTART_CODES and not ours:
            return None
        try:
            entered = self._read(regs.rip - 2, 2)
        except OSError as error:
            return "the instruction that entered its system call cannot be read (%s)" % error.strerror
        if entered != ptrace.SYSCALL_INSTRUCTION:
            return "it is in a system call not entered with a 64-bit syscall instruction"
        if ours and not self._signal_pending():
            self.final.rax = -ERESTARTNOHAND & _MASK64
            self.adjustments.append("%s, ended by the stop with EINTR, restarted" % EINTR_CALLS[regs.orig_rax])
        return None

    def _signal_pending(self):
        status = procfs.read_status(self.proc_root, self.pid)
        try:
            pending = int(status["SigPnd"], 16) | int(status["ShdPnd"], 16)
            return bool(pending & ~int(status["SigBlk"], 16))
        except (KeyError, ValueError):
            return True

    def _rseq_problem(self):
        """Inside an rseq critical section the kernel would move the IP to its abort handler: so do we."""
        try:
            section = self._rseq_section()
        except (ptrace.PtraceError, OSError) as error:
            if isinstance(error, ptrace.PtraceError) and error.errno == errno.EIO and _kernel_at_least(5, 13):
                return None          # the request exists since 5.13: EIO there means a kernel without rseq
            return "it cannot be told whether it is inside an rseq critical section (%s)" % error
        if section is None:
            return None
        version, flags, start, length, abort, signature, expected = section
        valid = version == 0 and flags == 0 and abort - start >= length and signature == expected
        if not valid or self.final.orig_rax != ptrace.NO_SYSCALL:
            return "it is inside an rseq critical section the kernel would not abort cleanly"
        self.final.rip = abort
        self.adjustments.append("rseq critical section at 0x%x aborted to 0x%x, as the kernel does" % (
            self.saved.rip, abort))
        return None

    def _rseq_section(self):
        """The rseq_cs descriptor the saved IP is inside of, with the abort signature, or None."""
        config = self.tracee.rseq_configuration()
        if not config.pointer:
            return None
        descriptor = struct.unpack("<Q", self._read(config.pointer + 8, 8))[0]      # struct rseq.rseq_cs
        if not descriptor:
            return None
        version, flags, start, length, abort = struct.unpack("<IIQQQ", self._read(descriptor, 32))
        if not start <= self.saved.rip < start + length:
            return None
        signature = struct.unpack("<I", self._read(abort - 4, 4))[0]
        return version, flags, start, length, abort, signature, config.signature

    def _instruction_problem(self):
        try:
            if self._read(self.address, 2) == ptrace.SYSCALL_INSTRUCTION:
                return None
        except OSError:
            pass
        return "the syscall instruction at 0x%x is gone" % self.address

    def _inject(self):
        """wait4 for each remaining zombie. Returns a signal of the parent's own to pass through, or 0."""
        if self.page is not None and self.loop_refusal is not None:
            sig = self._unmap()          # refused meanwhile, still mapped: never run again, only unmapped
            if sig or self.fail_reason or self.skip_reason:
                return sig
        elif self.page is not None or (self.way is None and self.loop_refusal is None and self._loop_wanted()):
            sig = self._inject_loop()
            # Zombies left without a failure: the loop became unusable (loop_refused says why): steps go on.
            if sig or self.fail_reason or self.skip_reason or not self.remaining:
                return sig
        self.way = "steps"
        return self._inject_steps()

    def _inject_steps(self):
        """One single step of the vdso's `syscall` per zombie."""
        started = time.monotonic()
        recount = self.threads > 1 and self.filter_count is not None
        try:
            while self.remaining:
                if time.monotonic() > self.deadline:
                    self.fail_reason = "process_timeout reached during the injection"
                    return 0
                if recount and not self.tracee.seccomp_unchanged(self.filter_count):
                    self.fail_reason = "a seccomp filter was added while the parent was stopped"
                    return 0
                # A pause that lands now: give the registers back while they can be, before the next step.
                frozen = frozen_problem(self.proc_root, self.pid)
                if frozen:
                    self.skip_reason = frozen + " meanwhile: registers restored before the next step"
                    return 0
                zombie, inner = self.remaining[0]
                self._count(zombie, inner, self.tracee.syscall(self.saved, self.address, ptrace.NR_WAIT4,
                                                               wait4_args(inner)))
            return 0
        except ptrace.Aborted as aborted:
            if aborted.executed:
                self._count(*self.remaining[0], aborted.value)
            if not aborted.signal:
                self.fail_reason = str(aborted)
            return aborted.signal
        finally:
            self.inject_seconds += time.monotonic() - started

    # --- the loop: one page of our own, one resume for many wait4s ------------------------------------------

    def _loop_wanted(self):
        """True if the loop is to be tried: enough zombies, and the filters allow mmap and munmap as run."""
        if len(self.remaining) < LOOP_MIN_ZOMBIES:
            self.loop_refusal = "%d zombies: single steps cost less" % len(self.remaining)
        elif self.programs:
            self.loop_refusal = self._loop_filter_refusal()
        return self.loop_refusal is None

    def _loop_filter_refusal(self):
        """mmap and munmap evaluated with their real arguments (munmap's address is not known before the mmap:
        a filter that reads it cannot be evaluated beforehand, so the loop is not used)."""
        arch, ip = ptrace.audit_arch(self.saved), self.address + 2
        for name, number, args in (("mmap", ptrace.NR_MMAP, MMAP_ARGS),
                                   ("mprotect", ptrace.NR_MPROTECT, [0, ptrace.PAGE_SIZE, PROT_LOOP]),
                                   ("munmap", ptrace.NR_MUNMAP, [0, ptrace.PAGE_SIZE])):
            loads = set()
            allowed, names = seccomp.verdict(self.programs, seccomp.seccomp_data(number, arch, ip, args), loads)
            if not allowed:
                return "its seccomp filter does not allow %s (%s)" % (name, ", ".join(names))
            if name != "mmap" and loads & seccomp.ARG0_OFFSETS:
                return "its seccomp filter reads %s's address" % name
        return None

    def _loop_unusable(self, reason):
        """Fall back to single steps (in this same stop), the page unmapped first."""
        self.loop_refusal = reason
        return self._unmap()

    def _pause_problem(self):
        if self.threads > 1 and self.filter_count is not None and not self.tracee.seccomp_unchanged(
                self.filter_count):
            self.fail_reason = "a seccomp filter was added while the parent was stopped"
            return True
        frozen = frozen_problem(self.proc_root, self.pid)
        if frozen:
            self.skip_reason = frozen + " meanwhile: registers restored before going on"
            return True
        return False

    def _inject_loop(self):
        """mmap one fresh anonymous PROT_READ page (the kernel picks its address: no other thread of the parent
        knows of it), write the loop through /proc/PID/mem, mprotect it PROT_READ|PROT_EXEC (which the kernel
        refuses to a parent with MDWE: then single steps), write the pids, run it with one PTRACE_CONT up to
        its int3, munmap the page. Any other stop ends it: a signal of the parent's own is
        passed through by the caller once the registers are back (the page is unmapped at the next stop), a
        fault of our code is never delivered. Returns a signal to pass through, or 0."""
        if self._pause_problem():
            return 0
        if self.page is None:
            sig = self._map_page()
            if sig or self.page is None:
                return sig
            if not self.page_ready:         # a fault or process_timeout while preparing it, or a pause
                return 0 if self.skip_reason else self._unmap()
        elif not self.page_ready:
            return self._loop_unusable("a signal arrived while the loop's page was prepared")
        while self.remaining:
            if time.monotonic() > self.deadline:
                self.fail_reason = "process_timeout reached during the injection"
                break
            if self._pause_problem():
                return 0            # a frozen parent: the page stays (reported) rather than a step that hangs
            if not self._page_still_ours():
                if self.page is None:
                    # Another thread maps over memory that is not its own: nothing more is run in this parent.
                    self.skip_reason = "the loop's page was replaced by a mapping of the parent's own: reap stopped"
                    return 0
                return self._loop_unusable("the loop's page could not be read back")
            chunk = self.remaining[:LOOP_CHUNK]
            try:
                self._write_page(LOOP_PIDS, struct.pack("<%di" % len(chunk), *[inner for _, inner in chunk]))
            except OSError as error:
                return self._loop_unusable("the loop's pids cannot be written: %s" % error.strerror)
            sig = self._run_loop(chunk)
            if sig or self.fail_reason or self.skip_reason:
                if sig:
                    return sig
                break
            self.way = "loop"
        return self._unmap()

    def _map_page(self):
        self.code_written = False
        try:
            value = self.tracee.call(self.saved, self.address, ptrace.NR_MMAP, MMAP_ARGS)
        except ptrace.Aborted as aborted:
            if aborted.executed and _is_page(aborted.value):
                self.page = aborted.value
            if not aborted.signal:
                self.fail_reason = str(aborted)
            return aborted.signal
        if not _is_page(value):
            self.loop_refusal = "mmap of the loop's page failed (%s)" % (
                os.strerror(-value) if -4096 < value < 0 else "0x%x" % (value & _MASK64))
            return 0
        self.page = value
        if self.wait4_loads & seccomp.IP_OFFSETS:
            # A filter that reads the instruction pointer: asked again about wait4 from the page itself.
            datas = [seccomp.seccomp_data(ptrace.NR_WAIT4, ptrace.audit_arch(self.saved),
                                          self.page + LOOP_SYSCALL_END, wait4_args(inner))
                     for _, inner in self.remaining]
            allowed, names, _ = seccomp.verdict_for_all(self.programs, datas)
            if not allowed:
                return self._loop_unusable("its seccomp filter does not allow wait4 from the loop's page (%s)"
                                           % ", ".join(names))
        try:
            self._write_page(0, LOOP_CODE)
            if self._read_page(len(LOOP_CODE)) != LOOP_CODE:
                raise OSError(errno.EIO, "the code read back differs")
            self.code_written = True
        except OSError as error:
            # Written to, but not as we wrote it: whether it is still ours is unknown (another thread may have
            # mapped over it): never unmapped by us, reported in page_left.
            self.page_error, self.page_unverified = "its code could not be written and read back", True
            return self._loop_unusable("the loop's page cannot be written: %s" % error.strerror)
        if self._pause_problem():
            return 0                # frozen: no step that could hang; the page stays (reported)
        try:
            value = self.tracee.call(self.saved, self.address, ptrace.NR_MPROTECT,
                                     [self.page, ptrace.PAGE_SIZE, PROT_LOOP])
        except ptrace.Aborted as aborted:
            self.page_ready = aborted.executed and aborted.value == 0
            if not aborted.signal:
                self.fail_reason = str(aborted)
            return aborted.signal
        self.page_ready = value == 0
        if value != 0:
            return self._loop_unusable("mprotect of the loop's page to PROT_READ|PROT_EXEC failed (%s: MDWE, or an "
                                       "LSM's rule on executable memory)" % (
                                           os.strerror(-value) if -4096 < value < 0 else value))
        return 0

    def _write_page(self, offset, data):
        if self._mem_rw is None:
            self._mem_rw = os.open("%s/%d/mem" % (self.proc_root, self.pid), os.O_RDWR | os.O_CLOEXEC)
        if os.pwrite(self._mem_rw, data, self.page + offset) != len(data):
            raise OSError(errno.EIO, "short write")

    def _page_still_ours(self):
        """Our code still in our page, read back before each run of it and before its munmap: another thread of
        the parent runs meanwhile and may have mapped memory of its own there (MAP_FIXED), which we must neither
        run, nor make executable, nor unmap. Not ours: self.page forgotten, and said. Unreadable (not resident,
        say): unknown, so never unmapped by us, reported in page_left."""
        code = self._read_page(len(LOOP_CODE))
        if code == LOOP_CODE:
            return True
        if code is None:
            self.page_error, self.page_unverified = "it could not be read back to tell it is still ours", True
        else:
            self.adjustments.append("our page at 0x%x was replaced by a mapping of the parent's own: left to it"
                                    % self.page)
            self.page, self.page_error = None, None
        return False

    def _read_page(self, size):
        try:
            return self._read(self.page, size)
        except OSError:
            return None

    def _run_loop(self, chunk):
        """One resume: the loop over chunk. Returns a signal of the parent's own to pass through, or 0."""
        regs = self.saved.copy()
        regs.rip, regs.orig_rax, regs.rax = self.page, ptrace.NO_SYSCALL, 0
        regs.r12, regs.r13, regs.r14 = self.page + LOOP_PIDS, len(chunk), 0
        regs.eflags &= ~0x100                                  # no trap flag
        started = time.monotonic()
        try:
            stop, after = self.tracee.run_code(regs)
        except ptrace.PtraceError:
            for zombie, inner in chunk:                        # which ran, if any: /proc tells after the detach
                self._count(zombie, inner, None)
            raise
        finally:
            self.inject_seconds += time.monotonic() - started
        self._note_queued_trap(stop, after.rip)
        inside = self.page <= after.rip <= self.page + LOOP_TRAP_END
        done = min(after.r14, len(chunk)) if inside else len(chunk)
        if inside and after.rip == self.page + LOOP_SYSCALL_END and done < len(chunk):
            done += 1                                          # stopped right after a wait4, before r14 counted it
        for zombie, inner in chunk[:done]:
            self._count(zombie, inner, None)                   # /proc tells after the detach which were reaped
        if (stop.kind == "signal" and stop.sig == signal.SIGTRAP and stop.code == ptrace.SI_KERNEL
                and after.rip == self.page + LOOP_TRAP_END and done == len(chunk)):
            return 0
        if stop.kind == "signal" and stop.sig in ptrace.SYNCHRONOUS_SIGNALS and stop.code > 0:
            self.fail_reason = "the loop was stopped by %s at 0x%x: not delivered" % (
                ptrace.describe(stop), after.rip)
            return 0
        if stop.kind == "signal":
            return stop.sig
        if stop.kind == "group":
            self.skip_reason = "the parent was stopped by signal %d meanwhile: left stopped" % stop.sig
        else:
            self.fail_reason = "process_timeout reached during the injection"
        return 0

    def _unmap(self, regs=None):
        """munmap our page from the vdso's `syscall` while stopped (UNMAP_TIME past process_timeout at most).

        Returns a signal of the parent's own that arrived meanwhile, or 0. If it cannot be done, the page is
        left and reported (page_left)."""
        # A page our code was never written to (refused before, or the write failed) is as the mmap left it:
        # an untouched anonymous page is not resident, so not read back; the mmap a moment ago made it ours.
        if self.page is None or self.page_unverified or (self.code_written and not self._page_still_ours()):
            return 0
        frozen = frozen_problem(self.proc_root, self.pid)
        if frozen:
            self.page_error = frozen + ": no step that would hang"
            return 0
        if self.threads > 1 and self.filter_count is not None and not self.tracee.seccomp_unchanged(
                self.filter_count):
            self.page_error = "a seccomp filter was added meanwhile: munmap not evaluated, not run"
            return 0
        tracee, deadline = self.tracee, self.tracee.deadline
        tracee.deadline = max(deadline, time.monotonic() + UNMAP_TIME)
        try:
            value = tracee.call(self.saved if regs is None else regs, self.address, ptrace.NR_MUNMAP,
                                [self.page, ptrace.PAGE_SIZE])
            if value == 0:
                self.page = None
            else:
                self.page_error = "munmap failed (%s)" % os.strerror(-value)
        except ptrace.Aborted as aborted:
            if aborted.executed and aborted.value == 0:
                self.page = None
            if not aborted.signal:
                self.page_error = str(aborted)
            return aborted.signal
        finally:
            tracee.deadline = deadline
        return 0

    def _count(self, zombie, inner, value):
        # value None: it ran, result not read (see ptrace.Tracee.syscall); /proc tells after the detach.
        self.remaining.pop(0)
        self.executed.append((zombie, inner, value))

    def _restore(self):
        if self.tracee.ran_own_code:
            # It ran on with its own registers (ptrace.Tracee.take_step_trap): those are newer than self.final.
            self.final_applied = True
        elif not self.tracee.restore(self.final):
            self.restore_mismatch = True
        self.final_applied = True
        if self.tracee.step_pending:
            self.pass_sig = self.tracee.take_step_trap() or self.pass_sig

    def _release(self):
        """The one place the parent is let go: registers restored while it is stopped, then detached."""
        tracee = self.tracee
        try:
            if self.page is not None and tracee.attached and tracee.stopped and self.saved is not None:
                self._last_unmap()
            if tracee.attached and self.final is not None and (
                    tracee.modified or not (self.final_applied or self.final.same_as(self.saved))):
                if not tracee.stopped:
                    self._await_stop()
                self._restore()
        except ptrace.PtraceError as error:
            self.error = self.error or error
        finally:
            tracee.detach(self.pass_sig)
            for fd in (self._mem, self._mem_rw):
                if fd is not None:
                    os.close(fd)

    def _last_unmap(self):
        """Our page still mapped at the end (a pause, a job-control stop, an error): one more try."""
        if self.tracee.ran_own_code:
            self.page_error = "the parent ran on meanwhile: no step with registers older than its own"
            return
        try:
            sig = self._unmap(self.final if self.final is not None else self.saved)
        except ptrace.PtraceError as error:
            self.page_error = str(error)
            return
        if sig and not self.pass_sig:
            self.pass_sig = sig             # in its signal-delivery-stop: delivered by the detach, siginfo kept

    def _await_stop(self):
        """Past the grace with our registers in it: the module is answered now (left attached, an alert), and
        this process, which outlives the module, waits for the stop as long as it takes, then restores them.

        The known way here is a pause landing while the parent runs our code: a task frozen by the cgroup v1
        freezer does not stop for PTRACE_INTERRUPT until it is thawed. At the thaw it stops before it returns to
        user mode, with this process still its tracer: there is no moment without one."""
        self.waits_on = ("frozen" if freezer_state(self.proc_root, self.pid) in ("FROZEN", "frozen")
                         else "not stopped")
        self._answer()
        stop = self.tracee.wait_stop(None)
        self._note_queued_trap(stop, self.tracee.get_registers().rip)
        if stop.kind == "signal" and not (stop.sig in ptrace.SYNCHRONOUS_SIGNALS and stop.code > 0):
            self.pass_sig = stop.sig

    def _note_queued_trap(self, stop, rip):
        """Our single step's syscall, or the loop's int3, ran just before this stop (rip right after it), and the
        stop is an interrupt, freeze or job-control one, which the kernel reports before it dequeues signals:
        our SIGTRAP may still be queued. Marked pending; take_step_trap reads the queue to know."""
        if stop.kind == "signal":
            return
        if rip == self.address + 2:
            self.tracee.step_pending, self.tracee.trap_address = True, self.address + 2
        elif self.page is not None and rip == self.page + LOOP_TRAP_END:
            self.tracee.step_pending, self.tracee.trap_address = True, None

    def _reaped(self):
        unknown = [zombie for zombie, _, value in self.executed if value is None]
        left = {zombie["pid"] for zombie in procfs.alive_zombies(self.proc_root, unknown)}
        return [zombie["pid"] for zombie, inner, value in self.executed
                if value == inner or (value is None and zombie["pid"] not in left)]

    def report(self, result):
        tracee = self.tracee
        held = tracee.held_seconds + (time.monotonic() - tracee._held_since if tracee._held_since else 0.0)
        result.update(way=self.way, loop_refused=self.loop_refusal if self.way != "loop" else None,
                      page_left=None if self.page is None else (
                          "0x%x: a 4 KiB anonymous r-x mapping of ours left in the parent (%s)" % (
                              self.page, self.page_error or "not unmapped")))
        result.update(reaped=self._reaped(), seccomp=self.seccomp_names, rounds=self.rounds,
                      adjustments=list(self.adjustments), signals_passed=list(tracee.passed_signals),
                      stop_seconds=round(held, 6) if tracee.stopped_at is not None else None,
                      inject_seconds=round(self.inject_seconds, 6) if self.rounds else None)
        if self.waits_on == "frozen":
            result.update(verdict="failed", left_attached=True, tracer=self.tid,
                          reason="LEFT ATTACHED: the parent's cgroup was frozen while it ran our code, and a frozen "
                                 "task cannot be stopped to restore its registers; tracer process %d outlives "
                                 "the module and restores them when it is thawed" % self.tid)
        elif self.waits_on:
            result.update(verdict="failed", left_attached=True, tracer=self.tid,
                          reason="LEFT ATTACHED: the parent could not be stopped again to restore its registers "
                                 "within %g s past process_timeout; tracer process %d waits on and restores "
                                 "them at its next stop" % (RESTORE_GRACE, self.tid))
        elif self.tracer_error is not None:
            result.update(verdict="failed", reason=self.tracer_error)
        elif self.error is not None:
            result.update(_error_verdict(self, self.error))
        elif self.skip_reason or self.fail_reason:
            result.update(verdict="skipped" if self.skip_reason else "failed",
                          reason=self.skip_reason or self.fail_reason)
        elif self.restore_mismatch:
            result.update(verdict="failed", reason="the parent's registers could not be restored exactly")
        else:
            result["verdict"] = "safe"


def _error_verdict(injection, error):
    if not injection.tracee.seized:
        # Refused before anything happened (Yama ptrace_scope 3, a container without CAP_SYS_PTRACE).
        return {"verdict": "skipped", "reason": "cannot attach: %s" % error}
    if error.errno == errno.ETIMEDOUT and injection.tracee.stopped_at is None:
        return {"verdict": "skipped", "reason": "it did not stop within process_timeout (throttled or frozen?): "
                                                "released untouched"}
    if error.errno == errno.ESRCH and _ends_soon(injection.proc_root, injection.parent):
        passed = injection.tracee.passed_signals
        return {"verdict": "failed", "reason": "the parent ended during the injection%s" % (
            ", after its own signal %s was passed through to it" % passed[-1] if passed else "")}
    return {"verdict": "failed", "reason": "injection stopped: %s" % error}


def _is_page(value):
    return value is not None and 0 < value < 1 << 47 and value % ptrace.PAGE_SIZE == 0


def abi_problem(regs):
    """Only the native ABI: 32-bit code (cs 0x23) would run `syscall` as a compat call, or fault."""
    if ptrace.audit_arch(regs) is None:
        return "the parent runs 32-bit code (cs 0x%x): only the native x86_64 ABI is injected" % regs.cs
    if regs.orig_rax != ptrace.NO_SYSCALL and regs.orig_rax & ptrace.X32_SYSCALL_BIT:
        return "the parent is in an x32 system call: only the native x86_64 ABI is injected"
    return None


def _kernel_at_least(*wanted):
    try:
        return tuple(int(part) for part in os.uname().release.split("-")[0].split(".")[:2]) >= wanted
    except ValueError:
        return False


def _ends_soon(proc_root, parent, timeout=1.0):
    """True if the parent is gone or dying (a SIGKILL makes ptrace answer ESRCH before /proc shows it)."""
    return waiter.poll_until(lambda: procsignal.is_gone(proc_root, parent["pid"], parent["start_time"]), timeout,
                             0.01)


def _verify_after(proc_root, parent, before, targets, result):
    """Zombies gone, parent the same process in the same state class and not stopped: otherwise say why."""
    left = procfs.alive_zombies(proc_root, [zombie for zombie, _ in targets])
    after = procfs.read_stat(proc_root, parent["pid"])
    if after is None or after.start_time != parent["start_time"]:
        result.update(verdict="failed", reason="the parent is gone after the injection")
    elif after.state in ("t", "T") or _state_class(after.state) != _state_class(before.state):
        result.update(verdict="failed", reason="the parent's state changed from %s to %s" % (before.state,
                                                                                             after.state))
    elif left:
        result.update(verdict="failed", reason="%d zombies still there after wait4" % len(left))
    else:
        result.update(verdict="safe", ok=True, reason="reaped %d zombies in place" % len(result["reaped"]))
    return result
