"""Real parents that never reap: each forks children that exit at once, then does one kind of work."""

import os
import subprocess
import sys

from helpers.zombies import start_time, wait_for

# The parent prints "ready" once its zombies exist, then one line of result when its work ends.
SCRIPT = r'''
import os, sys, threading, time
mode, zombies = sys.argv[1], int(sys.argv[2])

def make_zombies(count):
    for _ in range(count):
        if os.fork() == 0:
            os._exit(0)

if mode == "seccomp-kill-wait4":
    import ctypes, struct
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    # cBPF: A = seccomp_data.nr; if A == 61 (wait4) return KILL_PROCESS else ALLOW.
    program = [(0x20, 0, 0, 0), (0x15, 0, 1, 61), (0x06, 0, 0, 0x80000000), (0x06, 0, 0, 0x7FFF0000)]
    raw = ctypes.create_string_buffer(b"".join(struct.pack("<HBBI", *item) for item in program))
    fprog = struct.pack("<HxxxxxxQ", len(program), ctypes.addressof(raw))
    buffer = ctypes.create_string_buffer(fprog)
    assert libc.prctl(38, 1, 0, 0, 0) == 0                     # PR_SET_NO_NEW_PRIVS
    assert libc.prctl(22, 2, ctypes.addressof(buffer), 0, 0) == 0, ctypes.get_errno()   # PR_SET_SECCOMP, FILTER

if mode == "threads":
    counts = [0, 0, 0]
    stop = threading.Event()
    def work(index):
        if index == 0:
            make_zombies(zombies // 2)                          # children of a non-main thread
        while not stop.is_set():
            counts[index] += 1
    workers = [threading.Thread(target=work, args=(i,)) for i in range(3)]
    for worker in workers:
        worker.start()
    time.sleep(0.2)
    make_zombies(zombies - zombies // 2)
else:
    make_zombies(zombies)

print("ready", flush=True)
if mode in ("sleep", "seccomp-kill-wait4"):
    started = time.monotonic()
    time.sleep(float(sys.argv[3]))
    print("slept %.3f" % (time.monotonic() - started), flush=True)
elif mode == "busy":
    total, n, limit = 0, 0, int(sys.argv[3])
    while n < limit:
        total += n
        n += 1
    print("counted %d %s" % (n, total == limit * (limit - 1) // 2), flush=True)
elif mode == "read":
    data = sys.stdin.readline()
    print("read %s" % data.strip(), flush=True)
elif mode == "threads":
    time.sleep(float(sys.argv[3]))
    stop.set()
    for worker in workers:
        worker.join()
    print("threads %s" % all(count > 0 for count in counts), flush=True)
'''


class Parent:
    """A parent process of the given mode, with its zombies made and recorded."""

    def __init__(self, mode, zombies, argument="3"):
        self.process = subprocess.Popen([sys.executable, "-c", SCRIPT, mode, str(zombies), argument],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout.readline().strip() == "ready"
        self.pid = self.process.pid
        wait_for(lambda: len(self.zombie_pids()) == zombies, "%d zombies of the %s parent" % (zombies, mode))
        self.zombies = [{"pid": pid, "start_time": start_time(pid), "ppid": self.pid} for pid in self.zombie_pids()]
        self.record = {"pid": self.pid, "start_time": start_time(self.pid), "name": "python3"}

    def zombie_pids(self):
        children = []
        for task in os.listdir("/proc/%d/task" % self.pid):
            try:
                children += open("/proc/%d/task/%s/children" % (self.pid, task)).read().split()
            except OSError:
                pass
        zombies = []
        for child in children:
            try:
                if open("/proc/%s/stat" % child).read().rsplit(")", 1)[1].split()[0] == "Z":
                    zombies.append(int(child))
            except OSError:
                pass
        return sorted(zombies)

    def alive(self):
        return self.process.poll() is None

    def finish(self, timeout=30):
        """The parent's last line, once it has ended by itself."""
        out, _ = self.process.communicate(timeout=timeout)
        return out.strip().splitlines()[-1] if out.strip() else ""

    def close(self):
        if self.process.poll() is None:
            self.process.kill()
        self.process.communicate()
