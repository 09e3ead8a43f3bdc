"""Confirmation over this machine's real /proc, with real zombies and the real clock: quick runs never confirm,
runs spaced past check_interval do, and only the zombies seen over that span are handed to the remediation."""

import os
import signal
import subprocess
import sys
import time

from ansible.module_utils.zombie_cleaner.observe import scan
from helpers.zombies import wait_for, zombie_children

HELPERS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "helpers")

# A parent that never reaps: for each number read on stdin it starts that many children that exit at once,
# and prints their pids. SIGTERM (zombie_parent.stop) reaps them all and ends it.
PARENT = r'''
import os, signal, sys
sys.path.insert(0, sys.argv[1])
from zombie_parent import stop
signal.signal(signal.SIGTERM, stop)
for line in sys.stdin:
    pids = [os.spawnv(os.P_NOWAIT, "/bin/true", ["true"]) for _ in range(int(line))]
    print(" ".join(map(str, pids)), flush=True)
stop(None, None)
'''


class Parent:
    def __init__(self, count):
        self.process = subprocess.Popen([sys.executable, "-c", PARENT, HELPERS], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, text=True)
        self.pid = self.process.pid
        self.zombies = self.more(count)

    def more(self, count):
        """count more zombies of this parent, once they are zombies."""
        self.process.stdin.write("%d\n" % count)
        self.process.stdin.flush()
        pids = sorted(int(pid) for pid in self.process.stdout.readline().split())
        wait_for(lambda: set(pids) <= set(zombie_children(self.pid)), "zombies %s of %d" % (pids, self.pid))
        return pids

    def close(self):
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(10)
        self.process.stdin.close()
        self.process.stdout.close()


def ours(result, parent):
    return next(group for group in result["host_groups"] if group["parent"]["pid"] == parent.pid)


def cured(result, parent):
    return [sorted(zombie["pid"] for zombie in group["zombies"])
            for group in result["to_cure"]["host_groups"] if group["parent"]["pid"] == parent.pid]


def test_quick_runs_do_not_confirm_runs_past_check_interval_do_and_only_old_zombies_are_cured(tmp_path, cleanup):
    parent = Parent(2)
    cleanup(parent)
    options = scan.ScanOptions(state_path=str(tmp_path / "state.json"), check_interval="1s", confirm_count=3,
                               reap_host_zombies=True)
    started = time.monotonic()
    quick = []
    for run in range(3):                            # half a second apart: 1 s in all, 1.6 s needed
        time.sleep(max(0.0, started + 0.5 * run - time.monotonic()))
        quick.append(scan.run_scan(options))
    assert time.monotonic() - started < 1.6, "the quick runs were not quick"
    assert [ours(result, parent)["sightings"] for result in quick] == [1, 2, 3]
    assert [ours(result, parent)["confirmed"] for result in quick] == [False, False, False]
    assert [cured(result, parent) for result in quick] == [[], [], []]

    # The positive control: one more run once the span has passed, and new zombies just before it.
    time.sleep(max(0.0, started + 1.7 - time.monotonic()))
    new = parent.more(2)
    spaced = scan.run_scan(options)
    group = ours(spaced, parent)
    assert group["confirmed"] is True and group["zombie_count"] == 4
    assert cured(spaced, parent) == [parent.zombies]               # the old ones only
    [record] = [item for item in spaced["to_cure"]["host_groups"] if item["parent"]["pid"] == parent.pid]
    assert record["unconfirmed_zombies"] == 2 and record["zombie_count"] == 4
    assert {zombie["pid"]: zombie["confirmed"] for zombie in group["zombies"]} == dict(
        [(pid, True) for pid in parent.zombies] + [(pid, False) for pid in new])
