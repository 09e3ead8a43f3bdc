"""Parents for the reap-in-place safety tests: compiled at run time (gcc, as, ld) into a temp dir, run as plain
processes, optionally inside cgroup v1 groups (cpu throttling, freezer) made and removed here.

Every parent answers for its own health: alive, untraced (TracerPid 0), not stopped, and its own report of
what it computed (reap_c/reap_parent.c says what each mode checks).
"""

import os
import select
import subprocess
import time
import uuid

from helpers.zombies import start_time, wait_for

C_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "reap_c")
CGROUP_ROOT = "/sys/fs/cgroup"


def build(directory):
    """Compile the parents into directory: {"c": path, "i386": path, "compat": path}."""
    built = {"c": os.path.join(directory, "reap_parent"), "i386": os.path.join(directory, "i386_parent"),
             "compat": os.path.join(directory, "compat_parent")}
    _run(["gcc", "-O2", "-pthread", "-o", built["c"], os.path.join(C_DIR, "reap_parent.c")])
    _run(["as", "--32", "-o", built["i386"] + ".o", os.path.join(C_DIR, "i386_parent.s")])
    _run(["ld", "-m", "elf_i386", "-o", built["i386"], built["i386"] + ".o"])
    _run(["as", "--64", "-o", built["compat"] + ".o", os.path.join(C_DIR, "compat_parent.s")])
    _run(["ld", "-o", built["compat"], built["compat"] + ".o"])
    return built


def _run(command):
    done = subprocess.run(command, capture_output=True, text=True)
    assert done.returncode == 0, "%s: %s" % (" ".join(command), done.stderr)


def children(pid):
    found = []
    for task in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/children" % (pid, task)) as handle:
                found += [int(child) for child in handle.read().split()]
        except OSError:
            pass
    return sorted(found)


def is_zombie(pid):
    try:
        with open("/proc/%d/stat" % pid, "rb") as handle:
            return handle.read().rsplit(b")", 1)[1].split()[0] == b"Z"
    except OSError:
        return False


def status(pid):
    with open("/proc/%d/status" % pid, "rb") as handle:
        lines = handle.read().decode("utf-8", "replace").splitlines()
    return dict(line.split(":", 1) for line in lines if ":" in line)


class Parent:
    """A running parent; `argv` its command line. Lines from it are read with a timeout."""

    def __init__(self, argv, zombies, ready_prefix="ready"):
        self.process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.pid = self.process.pid
        self._buffer = b""
        self.ready = self.line()
        assert self.ready.startswith(ready_prefix), self.ready
        wait_for(lambda: len(self.zombie_pids()) >= zombies, "%d zombies of %s" % (zombies, argv))
        self.record = {"pid": self.pid, "start_time": start_time(self.pid), "name": os.path.basename(argv[0])}

    def line(self, timeout=20.0):
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.process.stdout], [], [], left)[0]:
                raise AssertionError("no answer from parent %d (%s)" % (self.pid, self.health()))
            chunk = os.read(self.process.stdout.fileno(), 4096)
            if not chunk:
                raise AssertionError("parent %d ended: %s" % (self.pid, self.health()))
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line.decode()

    def send(self, text):
        self.process.stdin.write(text.encode() + b"\n")
        self.process.stdin.flush()

    def ask(self, text, timeout=20.0):
        self.send(text)
        return self.line(timeout)

    def report(self):
        """The report line as a dict of int."""
        words = self.ask("report").split()
        return {key: int(value) for key, value in zip(words[0::2], words[1::2])}

    def zombie_pids(self):
        return [pid for pid in children(self.pid) if is_zombie(pid)]

    def zombies(self):
        return [{"pid": pid, "start_time": start_time(pid), "ppid": self.pid} for pid in self.zombie_pids()]

    def health(self):
        """{"alive", "tracer", "state"}: what every test asserts on afterwards.

        Read from /proc, never with waitpid: this test process is the parent's parent, and a waitpid here
        (Popen.poll) must not be what tells a death (the tracer process, a fork of this one, sees it first)."""
        try:
            fields = status(self.pid)
        except OSError:
            return {"alive": False, "tracer": None, "state": None}
        state = fields["State"].split()[0]
        return {"alive": state not in ("Z", "X"), "tracer": int(fields["TracerPid"]), "state": state}

    def assert_healthy(self, settle=2.0):
        """Alive, untraced and not stopped (waiting up to `settle` for the kernel to finish a release)."""
        deadline = time.monotonic() + settle
        while True:
            health = self.health()
            if health["alive"] and health["tracer"] == 0 and health["state"] not in ("t", "T"):
                return
            assert time.monotonic() < deadline, "parent %d is not healthy: %s" % (self.pid, health)
            time.sleep(0.01)

    def quit(self, timeout=20):
        """Ask it to reap everything and exit; its exit status (0, or 4 EINTR, 5 wrong computation)."""
        if self.health()["alive"]:
            try:
                self.send("quit")
            except (BrokenPipeError, ValueError):
                pass
        return self.process.wait(timeout)

    def close(self):
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(10)
        for stream in (self.process.stdin, self.process.stdout):
            try:
                stream.close()
            except OSError:
                pass


class Cgroup:
    """A cgroup v1 group of one controller (cpu, freezer), removed with every task moved back out."""

    def __init__(self, controller, settings=()):
        self.controller = controller
        self.path = os.path.join(CGROUP_ROOT, controller, "zc-reap-%s" % uuid.uuid4().hex[:8])
        os.mkdir(self.path)
        for name, value in settings:
            self.write(name, value)

    def write(self, name, value):
        with open(os.path.join(self.path, name), "w") as handle:
            handle.write(str(value))

    def read(self, name):
        with open(os.path.join(self.path, name)) as handle:
            return handle.read().strip()

    def add(self, pid):
        """The whole process (every thread)."""
        self.write("cgroup.procs", pid)

    def freeze(self):
        self.write("freezer.state", "FROZEN")
        wait_for(lambda: self.read("freezer.state") == "FROZEN", "cgroup %s frozen" % self.path, timeout=10)

    def thaw(self):
        self.write("freezer.state", "THAWED")
        wait_for(lambda: self.read("freezer.state") == "THAWED", "cgroup %s thawed" % self.path, timeout=10)

    def remove(self):
        if not os.path.isdir(self.path):
            return
        if self.controller == "freezer" and self.read("freezer.state") != "THAWED":
            self.thaw()
        parent = os.path.dirname(self.path)
        for _ in range(100):
            tasks = self.read("tasks").split()
            for task in tasks:
                try:
                    with open(os.path.join(parent, "tasks"), "w") as handle:
                        handle.write(task)
                except OSError:
                    pass
            try:
                os.rmdir(self.path)
                return
            except OSError:
                time.sleep(0.05)
        raise AssertionError("cgroup %s could not be removed" % self.path)


def cgroup_v1_available(controller):
    return os.path.isdir(os.path.join(CGROUP_ROOT, controller)) and os.access(
        os.path.join(CGROUP_ROOT, controller), os.W_OK)

