"""A parent that forks COUNT children which exit at once and never waits for them.

    python3 zombie_parent.py COUNT

Prints the children's pids (as this process sees them) on one line, then sleeps.
It reaps its children only when asked to stop (SIGTERM), so a test leaves
nothing behind (this machine's PID 1 is slow to reap orphans). Standard
library only: it also runs inside the test fleet's nodes.
"""

import os
import signal
import sys
import time


def stop(signum, frame):
    while True:
        try:
            if os.waitpid(-1, 0)[0] <= 0:
                break
        except ChildProcessError:
            break
    os._exit(0)


def main():
    count = int(sys.argv[1])
    signal.signal(signal.SIGTERM, stop)
    pids = []
    for _ in range(count):
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        pids.append(pid)
    print(" ".join(map(str, pids)), flush=True)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
