"""Reap in place: how long the parent is stopped, beside the time of the wait4 injections alone, by the way used.

A fresh parent holding ZOMBIES real zombies per round (asleep, unthrottled; without a seccomp filter,
and with one that allows wait4 but reads its pid, so it is evaluated for each zombie), reaped with
reaper.reap as the module does. Two ways, side by side in one run: "loop" (the default for 3 zombies or
more: one page of our own mapped in the parent runs every wait4 with one PTRACE_CONT; mmap, mprotect and
munmap are three single steps) and "steps" (one PTRACE_SINGLESTEP per zombie: the fallback when the page
cannot be had). The stop is what the application feels; the rest of it (checks while stopped, filters,
the page's three calls, restore, detach) is the overhead beside the wait4s. The floor is the single steps
made by a C tracer (tests/helpers/reap_c/step_floor.c, compiled with gcc): what one single step per zombie
costs on this machine at best, apart from Python: the steps way cannot beat it, the loop does not pay it.

    python bench/reap_stop.py [--zombies 300] [--rounds 7]
Plain processes only (no container runtime).
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile

from common import ROOT, line, median

sys.path.insert(0, os.path.join(ROOT, "tests"))
from helpers.zombies import start_time, wait_for, zombie_children  # noqa: E402
from ansible.module_utils.zombie_cleaner.cure import ptrace, reaper  # noqa: E402

TARGET_MS = 5.0

# A parent that forks `count` children which exit at once, then sleeps; with "filter", first a seccomp filter
# that allows everything but reads wait4's first argument (so it is evaluated for each zombie).
PARENT = r'''
import ctypes, os, struct, sys, time
if sys.argv[2] == "filter":
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    # A = nr; if A != 61 ALLOW; A = args[0]; if A == 1 ERRNO else ALLOW
    program = [(0x20, 0, 0, 0), (0x15, 0, 3, 61), (0x20, 0, 0, 16), (0x15, 0, 1, 1), (0x06, 0, 0, 0x00050001),
               (0x06, 0, 0, 0x7FFF0000)]
    raw = ctypes.create_string_buffer(b"".join(struct.pack("<HBBI", *item) for item in program))
    fprog = ctypes.create_string_buffer(struct.pack("<HxxxxxxQ", len(program), ctypes.addressof(raw)))
    assert libc.prctl(38, 1, 0, 0, 0) == 0 and libc.prctl(22, 2, ctypes.addressof(fprog), 0, 0) == 0
for _ in range(int(sys.argv[1])):
    if os.fork() == 0:
        os._exit(0)
print("ready", flush=True)
time.sleep(3600)
'''


def zombie_parent(count, kind):
    process = subprocess.Popen([sys.executable, "-c", PARENT, str(count), kind], stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "ready"
    wait_for(lambda: len(zombie_children(process.pid)) == count, "%d zombies" % count, timeout=60)
    return process


def finish(process):
    process.kill()
    process.wait()
    process.stdout.close()


def one_round(count, kind, way):
    process = zombie_parent(count, kind)
    loop_min = reaper.LOOP_MIN_ZOMBIES
    try:
        zombies = [{"pid": pid, "start_time": start_time(pid)} for pid in zombie_children(process.pid)]
        parent = {"pid": process.pid, "start_time": start_time(process.pid)}
        if way == "steps":
            reaper.LOOP_MIN_ZOMBIES = count + 1          # as when the page cannot be had
        result = reaper.reap("/proc", parent, zombies, 30.0)
        assert result["ok"] and len(result["reaped"]) == count and result["way"] == way, result
        return result["stop_seconds"], result["inject_seconds"]
    finally:
        reaper.LOOP_MIN_ZOMBIES = loop_min
        finish(process)


def floor_round(binary, count, directory):
    """The injections alone from C, on a parent like the others."""
    process = zombie_parent(count, "plain")
    try:
        address, _ = ptrace.find_syscall_instruction(process.pid)
        pids = os.path.join(directory, "pids")
        with open(pids, "w") as handle:
            handle.write("\n".join(str(pid) for pid in zombie_children(process.pid)))
        words = subprocess.run([binary, str(process.pid), "%x" % address, pids], capture_output=True, text=True,
                               check=True).stdout.split()
        assert words[0] == "floor" and int(words[2]) == count and zombie_children(process.pid) == [], words
        return float(words[1])
    finally:
        finish(process)


def c_floor(count, rounds):
    if not shutil.which("gcc"):
        return None
    with tempfile.TemporaryDirectory() as directory:
        binary = os.path.join(directory, "step_floor")
        subprocess.run(["gcc", "-O2", "-o", binary, os.path.join(ROOT, "tests", "helpers", "reap_c", "step_floor.c")],
                       check=True)
        return median([floor_round(binary, count, directory) for _ in range(rounds)]) * 1000


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--zombies", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    line("## Reap in place: parent stop time for %d zombies (unthrottled parent, median of %d)"
         % (args.zombies, args.rounds))
    line()
    line("| parent | way | stopped (ms) | wait4s alone (ms) | overhead (ms) | per zombie (us) | target < %.0f ms |"
         % TARGET_MS)
    line("| --- | --- | --- | --- | --- | --- | --- |")
    for kind, label in (("plain", "no seccomp filter"), ("filter", "seccomp filter reading the pid")):
        # Interleaved round by round, so that both ways see the same load on a shared machine.
        measured = {"loop": [], "steps": []}
        for _ in range(args.rounds):
            for way in measured:
                measured[way].append(one_round(args.zombies, kind, way))
        for way, rounds in measured.items():
            stop, inject = median([item[0] for item in rounds]) * 1000, median([item[1] for item in rounds]) * 1000
            line("| %s | %s | %.2f | %.2f | %.2f | %.1f | %s |" % (
                label, way, stop, inject, stop - inject, stop * 1000 / args.zombies,
                "meets" if stop < TARGET_MS else "MISSES"))
    floor = c_floor(args.zombies, args.rounds)
    if floor is not None:
        line("| floor: one single step per zombie from C | steps | | %.2f | | %.1f | |" % (
            floor, floor * 1000 / args.zombies))
    line()


if __name__ == "__main__":
    main()
