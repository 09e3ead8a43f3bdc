# -*- coding: utf-8 -*-
# Copyright: zombie-cleaner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Evaluate a process's seccomp filters (classic BPF) on one exact system call, before injecting it.

The kernel runs every filter of a process on a syscall and applies the most
restrictive action. A syscall is injected into another process only if every
filter returns SECCOMP_RET_ALLOW for it, so a filter that kills, traps or
fails the call is never set off in somebody else's process.
"""

from __future__ import annotations

import struct

AUDIT_ARCH_X86_64 = 0xC000003E
SECCOMP_DATA_SIZE = 64            # int nr; u32 arch; u64 instruction_pointer; u64 args[6]
SECCOMP_RET_ACTION_FULL = 0xFFFF0000
SECCOMP_RET_ALLOW = 0x7FFF0000
ACTION_NAMES = {
    0x80000000: "KILL_PROCESS", 0x00000000: "KILL_THREAD", 0x00030000: "TRAP", 0x00050000: "ERRNO",
    0x7FC00000: "USER_NOTIF", 0x7FF00000: "TRACE", 0x7FFC0000: "LOG", SECCOMP_RET_ALLOW: "ALLOW",
}
MAX_STEPS = 100000                # a BPF program only jumps forward; this is a belt for broken input
ARG0_OFFSETS = frozenset(range(16, 24))   # args[0] in struct seccomp_data: the one word a reap varies
IP_OFFSETS = frozenset(range(8, 16))      # instruction_pointer
_MASK = 0xFFFFFFFF


class FilterError(Exception):
    """The program cannot be evaluated (unknown instruction, out-of-range load): treat as not allowed."""


def parse(raw):
    """struct sock_filter[] bytes -> [(code, jt, jf, k)]."""
    if len(raw) % 8:
        raise FilterError("a filter of %d bytes is not a whole number of instructions" % len(raw))
    return [struct.unpack("<HBBI", raw[offset:offset + 8]) for offset in range(0, len(raw), 8)]


def seccomp_data(nr, arch, instruction_pointer, args):
    args = [int(value) & 0xFFFFFFFFFFFFFFFF for value in (list(args) + [0] * 6)[:6]]
    return struct.pack("<iIQ6Q", nr, arch, instruction_pointer & 0xFFFFFFFFFFFFFFFF, *args)


def run(program, data, loads=None):
    """The 32-bit return value of the program on data (struct seccomp_data bytes).

    loads: a set that receives the offset of every word the program loaded on its way."""
    a = x = 0
    memory = [0] * 16
    pc = 0
    for _ in range(MAX_STEPS):
        if pc >= len(program):
            raise FilterError("the program ran past its end without returning")
        code, jt, jf, k = program[pc]
        pc += 1
        cls = code & 0x07
        if cls == 0x00 or cls == 0x01:                     # LD / LDX
            mode, size = code & 0xE0, code & 0x18
            if mode == 0x20 and cls == 0x00 and size == 0x00:          # LD W ABS
                if k % 4 or k + 4 > len(data):
                    raise FilterError("load at offset %d outside seccomp_data" % k)
                value = struct.unpack_from("<I", data, k)[0]
                if loads is not None:
                    loads.add(k)
            elif mode == 0x00:                                         # IMM
                value = k
            elif mode == 0x60:                                         # MEM
                if k >= 16:
                    raise FilterError("scratch memory index %d" % k)
                value = memory[k]
            elif mode == 0x80 and size == 0x00:                        # LEN
                value = len(data)
            else:
                raise FilterError("unsupported load instruction 0x%04x" % code)
            if cls == 0x00:
                a = value & _MASK
            else:
                x = value & _MASK
        elif cls == 0x02 or cls == 0x03:                   # ST / STX
            if k >= 16:
                raise FilterError("scratch memory index %d" % k)
            memory[k] = a if cls == 0x02 else x
        elif cls == 0x04:                                  # ALU
            operand = x if code & 0x08 else k
            op = code & 0xF0
            if op == 0x00:
                a = a + operand
            elif op == 0x10:
                a = a - operand
            elif op == 0x20:
                a = a * operand
            elif op == 0x30 or op == 0x90:
                if operand == 0:
                    return 0                               # the kernel's checker rejects /0 by K; by X it returns 0
                a = a // operand if op == 0x30 else a % operand
            elif op == 0x40:
                a = a | operand
            elif op == 0x50:
                a = a & operand
            elif op == 0x60:
                a = a << (operand & 31)        # the kernel masks the shift count (K >= 32 is rejected at load)
            elif op == 0x70:
                a = a >> (operand & 31)
            elif op == 0x80:
                a = -a
            elif op == 0xA0:
                a = a ^ operand
            else:
                raise FilterError("unsupported ALU instruction 0x%04x" % code)
            a &= _MASK
        elif cls == 0x05:                                  # JMP
            op = code & 0xF0
            if op == 0x00:
                pc += k
                continue
            operand = x if code & 0x08 else k
            if op == 0x10:
                taken = a == operand
            elif op == 0x20:
                taken = a > operand
            elif op == 0x30:
                taken = a >= operand
            elif op == 0x40:
                taken = bool(a & operand)
            else:
                raise FilterError("unsupported jump instruction 0x%04x" % code)
            pc += jt if taken else jf
        elif cls == 0x06:                                  # RET
            source = code & 0x18
            if source == 0x00:
                return k & _MASK
            if source == 0x10:
                return a
            raise FilterError("unsupported return instruction 0x%04x" % code)
        else:                                              # MISC
            if code == 0x07:
                x = a
            elif code == 0x87:
                a = x
            else:
                raise FilterError("unsupported instruction 0x%04x" % code)
    raise FilterError("the program did not return within %d steps" % MAX_STEPS)


def action_name(value):
    action = value & SECCOMP_RET_ACTION_FULL
    return ACTION_NAMES.get(action, "0x%08x" % action)


def verdict(programs, data, loads=None):
    """(allowed, [action name per filter]). Allowed only if every filter says ALLOW."""
    names = []
    for program in programs:
        try:
            names.append(action_name(run(program, data, loads)))
        except FilterError as error:
            names.append("unevaluable (%s)" % error)
    return all(name == "ALLOW" for name in names), names


def verdict_for_all(programs, datas, loads=None):
    """(allowed, names, evaluations) for a list of seccomp_data that differ only in args[0].

    A cBPF program's path, and so its answer, depends only on the words it loads: if no
    filter loaded args[0] for the first data, the answer is the same for all of them and one
    evaluation is enough. Otherwise each is evaluated, up to the first refusal.
    loads: a set that receives the offsets the filters loaded for the first data."""
    loads = set() if loads is None else loads
    allowed, names = verdict(programs, datas[0], loads)
    if not allowed or not loads & ARG0_OFFSETS:
        return allowed, names, 1
    for count, data in enumerate(datas[1:], 2):
        allowed, names = verdict(programs, data)
        if not allowed:
            return False, names, count
    return True, names, len(datas)
