"""The classic BPF evaluator that decides whether wait4 may be injected under a seccomp filter."""

import pytest

from ansible.module_utils.zombie_cleaner.cure import seccomp

ALLOW, KILL, ERRNO = 0x7FFF0000, 0x80000000, 0x00050001
ARCH = seccomp.AUDIT_ARCH_X86_64


def data(nr=61, arch=ARCH, args=(2**64 - 1, 0, 1, 0, 0, 0)):
    return seccomp.seccomp_data(nr, arch, 0x7FFF0000ABC, args)


# A libseccomp-style filter: check arch, then the syscall number, default ERRNO.
TYPICAL = [(0x20, 0, 0, 4), (0x15, 1, 0, ARCH), (0x06, 0, 0, KILL), (0x20, 0, 0, 0),
           (0x15, 0, 1, 61), (0x06, 0, 0, ALLOW), (0x06, 0, 0, ERRNO)]


@pytest.mark.parametrize("program, payload, expected", [
    (TYPICAL, data(), "ALLOW"),
    (TYPICAL, data(nr=165), "ERRNO"),
    (TYPICAL, data(arch=0x40000003), "KILL_PROCESS"),
    # arg0 high word: wait4(-1) has 0xffffffff at offset 20
    ([(0x20, 0, 0, 20), (0x15, 0, 1, 0xFFFFFFFF), (0x06, 0, 0, ERRNO), (0x06, 0, 0, ALLOW)], data(), "ERRNO"),
    ([(0x20, 0, 0, 20), (0x15, 0, 1, 0xFFFFFFFF), (0x06, 0, 0, ERRNO), (0x06, 0, 0, ALLOW)],
     data(args=(42, 0, 1, 0, 0, 0)), "ALLOW"),
    # ALU and JSET: (nr + 3) & 0x3f == 0 for 61; jset on WNOHANG in arg2
    ([(0x20, 0, 0, 0), (0x04, 0, 0, 3), (0x54, 0, 0, 0x3F), (0x15, 0, 1, 0), (0x06, 0, 0, ALLOW),
      (0x06, 0, 0, KILL)], data(), "ALLOW"),
    ([(0x20, 0, 0, 32), (0x45, 0, 1, 1), (0x06, 0, 0, 0x7FF00000), (0x06, 0, 0, ALLOW)], data(), "TRACE"),
    # scratch memory, TAX/TXA, RET A, LD LEN, JGT/JGE with X
    ([(0x00, 0, 0, ALLOW), (0x02, 0, 0, 3), (0x00, 0, 0, 0), (0x07, 0, 0, 0), (0x60, 0, 0, 3), (0x16, 0, 0, 0)],
     data(), "ALLOW"),
    ([(0x80, 0, 0, 0), (0x25, 1, 0, 63), (0x06, 0, 0, KILL), (0x01, 0, 0, 60), (0x20, 0, 0, 0), (0x3D, 0, 1, 0),
      (0x06, 0, 0, ALLOW), (0x06, 0, 0, KILL)], data(), "ALLOW"),
    # division by X == 0 ends the program with 0: KILL_THREAD, as the kernel does
    ([(0x01, 0, 0, 0), (0x20, 0, 0, 0), (0x3C, 0, 0, 0), (0x06, 0, 0, ALLOW)], data(), "KILL_THREAD"),
    ([(0x05, 0, 0, 1), (0x06, 0, 0, KILL), (0x06, 0, 0, 0x7FFC0000)], data(), "LOG"),
])
def test_programs(program, payload, expected):
    assert seccomp.action_name(seccomp.run(program, payload)) == expected


@pytest.mark.parametrize("program, message", [
    ([(0x20, 0, 0, 64), (0x06, 0, 0, ALLOW)], "outside seccomp_data"),
    ([(0x20, 0, 0, 2), (0x06, 0, 0, ALLOW)], "outside seccomp_data"),
    ([(0x20, 0, 0, 0)], "ran past its end"),
    ([(0xC7, 0, 0, 0)], "unsupported"),
])
def test_broken_programs_are_unevaluable_and_so_not_allowed(program, message):
    with pytest.raises(seccomp.FilterError, match=message):
        seccomp.run(program, data())
    allowed, names = seccomp.verdict([program], data())
    assert not allowed and names[0].startswith("unevaluable")


def test_every_filter_must_allow():
    allow_all = [(0x06, 0, 0, ALLOW)]
    assert seccomp.verdict([allow_all, TYPICAL], data()) == (True, ["ALLOW", "ALLOW"])
    assert seccomp.verdict([allow_all, TYPICAL], data(nr=165)) == (False, ["ALLOW", "ERRNO"])
    assert seccomp.verdict([], data()) == (True, [])


def test_parse_reads_struct_sock_filter():
    raw = b"\x20\x00\x00\x00\x04\x00\x00\x00" + b"\x06\x00\x00\x00\x00\x00\xff\x7f"
    assert seccomp.parse(raw) == [(0x20, 0, 0, 4), (0x06, 0, 0, ALLOW)]
    with pytest.raises(seccomp.FilterError):
        seccomp.parse(raw[:-1])


# One evaluation per parent (issue 14): the data of a reap differ only in args[0], the zombie's pid.
READS_NR_ONLY = [(0x20, 0, 0, 0), (0x15, 0, 1, 165), (0x06, 0, 0, ERRNO), (0x06, 0, 0, ALLOW)]
REFUSES_PID_ONE = [(0x20, 0, 0, 0), (0x15, 0, 3, 61), (0x20, 0, 0, 16), (0x15, 0, 1, 1), (0x06, 0, 0, ERRNO),
                   (0x06, 0, 0, ALLOW)]


def pids(*values):
    return [data(args=(value, 0, 0x40000001, 0, 0, 0)) for value in values]


def test_loads_are_reported():
    loads = set()
    seccomp.run(REFUSES_PID_ONE, data(), loads)
    assert loads == {0, 16}
    loads = set()
    seccomp.run(REFUSES_PID_ONE, data(nr=39), loads)
    assert loads == {0}                                   # the path that returned never looked at args[0]


def test_a_filter_that_never_reads_the_pid_is_evaluated_once():
    assert seccomp.verdict_for_all([READS_NR_ONLY, TYPICAL], pids(*range(2, 302))) == (True, ["ALLOW", "ALLOW"], 1)


def test_a_filter_that_reads_the_pid_is_evaluated_for_each_up_to_the_first_refusal():
    assert seccomp.verdict_for_all([REFUSES_PID_ONE], pids(5, 6, 7)) == (True, ["ALLOW"], 3)
    assert seccomp.verdict_for_all([REFUSES_PID_ONE], pids(5, 1, 7)) == (False, ["ERRNO"], 2)
    assert seccomp.verdict_for_all([REFUSES_PID_ONE], pids(1, 5)) == (False, ["ERRNO"], 1)


def test_a_refusal_of_the_first_is_final_whatever_it_read():
    assert seccomp.verdict_for_all([[(0x06, 0, 0, KILL)]], pids(5, 6)) == (False, ["KILL_PROCESS"], 1)


def test_shifts_by_x_use_the_count_modulo_32_as_the_kernel_does():
    """A = nr; X = 33; A <<= X is A << 1 in the kernel (a count of 33 is not a shift to 0): a filter built on the
    difference must not read ALLOW where the kernel kills."""
    program = [(0x20, 0, 0, 0), (0x01, 0, 0, 33), (0x6C, 0, 0, 0),           # A = nr; X = 33; A <<= X
               (0x15, 0, 1, 122), (0x06, 0, 0, 0x80000000), (0x06, 0, 0, 0x7FFF0000)]   # A == 61 << 1: kill
    data = seccomp.seccomp_data(61, seccomp.AUDIT_ARCH_X86_64, 0x1000, [0] * 6)
    assert seccomp.run(program, data) == 0x80000000
