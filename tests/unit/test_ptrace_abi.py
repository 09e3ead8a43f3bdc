"""What reap in place refuses from registers and /proc alone: the ABI, the seccomp mode, SIGTRAP, the blocked
call; and the arguments seccomp is asked about (issue 14). Fake /proc trees, no process is touched."""

import struct

import pytest

from ansible.module_utils.zombie_cleaner.cure import ptrace, reaper, seccomp
from helpers import procfixture

PID = 4242


def registers(**values):
    regs = ptrace.Registers()
    regs.cs, regs.orig_rax = ptrace.USER_CS, ptrace.NO_SYSCALL
    for name, value in values.items():
        setattr(regs, name, value)
    return regs


@pytest.mark.parametrize("values, problem", [
    ({}, None),
    ({"orig_rax": 0}, None),                                          # in read(2), native
    ({"cs": 0x23}, "32-bit code (cs 0x23)"),                          # compat code in any ELF
    ({"orig_rax": ptrace.X32_SYSCALL_BIT | 0}, "x32 system call"),
])
def test_only_the_native_abi(values, problem):
    found = reaper.abi_problem(registers(**values))
    assert found is None if problem is None else problem in found
    assert ptrace.audit_arch(registers(**values)) == (None if "cs" in values else seccomp.AUDIT_ARCH_X86_64)


def elf(elf_class, machine, data=1):
    return b"\x7fELF" + bytes([elf_class, data]) + b"\0" * 12 + struct.pack("<H", machine)


@pytest.mark.parametrize("header, problem", [
    (elf(2, 62), None),
    (elf(1, 3), "32-bit i386"),
    (elf(1, 62), "x32"),
    (elf(2, 183), "ELF class 2, machine 183"),
    (elf(2, 62, data=2), "ELF class 2, machine"),
    (b"#!/bin/sh\n" + b"\0" * 10, "not an ELF file"),
])
def test_the_executable_is_checked_before_attaching(tmp_path, header, problem):
    (tmp_path / str(PID)).mkdir()
    (tmp_path / str(PID) / "exe").write_bytes(header)
    found = reaper.executable_problem(str(tmp_path), PID)
    assert found is None if problem is None else problem in found


def test_an_unreadable_executable_is_refused(tmp_path):
    assert "unreadable" in reaper.executable_problem(str(tmp_path), PID)


@pytest.mark.parametrize("status, problem", [
    ({"Seccomp": "0"}, None),
    ({"Seccomp": "2"}, None),
    ({"Seccomp": "1"}, "strict seccomp mode"),
    ({}, "seccomp mode is unknown"),                # the field missing: a status that could not be read
    ({"Seccomp": "3"}, "seccomp mode is unknown"),
])
def test_seccomp_mode_fails_closed(status, problem):
    found = reaper.seccomp_mode_problem(status)
    assert found is None if problem is None else problem in found


@pytest.mark.parametrize("blocked, ignored, problem", [
    ("0000000000000000", "0000000000000000", None),
    ("0000000000010000", "0000000000000000", None),                   # SIGCHLD blocked: fine
    ("0000000000000010", "0000000000000000", "blocks or ignores SIGTRAP"),
    ("0000000000000000", "0000000000000010", "blocks or ignores SIGTRAP"),
    (None, "0000000000000000", "signal mask is unreadable"),
])
def test_a_parent_that_blocks_or_ignores_sigtrap_is_refused(blocked, ignored, problem):
    status = {"SigIgn": ignored}
    if blocked is not None:
        status["SigBlk"] = blocked
    found = reaper.sigtrap_problem(status)
    assert found is None if problem is None else problem in found


def proc_tree(tmp_path, syscall_line, before_pc=b"\x0f\x05", pc=0x401002, fds=None):
    """A fake /proc/PID with `syscall` and a sparse `mem` holding `before_pc` just before pc."""
    return procfixture.blocked_pid(tmp_path, PID, syscall_line, before_pc, pc, fds)


def syscall_line(number, *args, pc=0x401002):
    args = list(args) + [0] * (6 - len(args))
    return "%d %s 0x7ffc0000 0x%x\n" % (number, " ".join("0x%x" % value for value in args), pc)


@pytest.mark.parametrize("line, problem", [
    ("running\n", None),
    ("-1 0x7ffc0000 0x401002\n", None),
    (syscall_line(230), None),                                           # clock_nanosleep: restarted
    (syscall_line(7), None),                                             # poll: restarted
    (syscall_line(232), "blocked in epoll_wait"),
    (syscall_line(281), "blocked in epoll_pwait"),
    (syscall_line(441), "blocked in epoll_pwait2"),
    (syscall_line(128), "blocked in rt_sigtimedwait"),
    (syscall_line(65), "blocked in semop"),
    (syscall_line(220), "blocked in semtimedop"),
    (syscall_line(208), "blocked in io_getevents"),
    (syscall_line(333), "blocked in io_pgetevents"),
    (syscall_line(426), "blocked in io_uring_enter"),
    (syscall_line(ptrace.X32_SYSCALL_BIT | 0), "x32 system call"),
])
def test_the_blocked_call_is_read_before_attaching(tmp_path, line, problem):
    found = reaper.blocked_call_problem(proc_tree(tmp_path, line), PID)
    assert found is None if problem is None else problem in found


def test_a_call_entered_with_int_0x80_is_refused(tmp_path):
    root = proc_tree(tmp_path, syscall_line(3), before_pc=b"\xcd\x80")      # read(2) of the i386 table
    assert "not entered with a 64-bit syscall instruction" in reaper.blocked_call_problem(root, PID)


def test_read_on_something_that_is_not_a_socket_needs_no_timeout_check(tmp_path):
    root = proc_tree(tmp_path, syscall_line(0, 3), fds={3: "pipe:[1234]"})
    assert reaper.blocked_call_problem(root, PID) is None


def test_a_socket_call_whose_descriptor_is_gone_is_refused(tmp_path):
    root = proc_tree(tmp_path, syscall_line(45, 9))
    assert "timeout is unreadable" in reaper.blocked_call_problem(root, PID)


def test_wait4_is_asked_about_with_the_flags_it_is_run_with():
    # __WALL, so that clone() children without SIGCHLD are reaped too; seccomp sees exactly these six words.
    assert reaper.wait4_args(77) == [77, 0, ptrace.WNOHANG | ptrace.WALL, 0, 0, 0]
    refuse_wall = [(0x20, 0, 0, 32), (0x45, 0, 1, ptrace.WALL), (0x06, 0, 0, 0x00050001), (0x06, 0, 0, 0x7FFF0000)]
    data = seccomp.seccomp_data(ptrace.NR_WAIT4, seccomp.AUDIT_ARCH_X86_64, 0x1002, reaper.wait4_args(77))
    assert seccomp.verdict([refuse_wall], data) == (False, ["ERRNO"])


def test_registers_compare_byte_for_byte():
    first, second = registers(rip=1), registers(rip=1)
    assert first.same_as(second) and first.copy().same_as(first)
    second.rax = 5
    assert not first.same_as(second)
