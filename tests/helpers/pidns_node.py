"""A node of its own on this machine for site.yml runs with host zombies: a PID namespace (unshare --pid --fork
--kill-child --mount-proc) whose /proc shows only its own processes.

Why: site.yml with zombie_cleaner_reap_host_zombies=true reaps every confirmed host zombie it sees. On the host's
own /proc that would be other tests' zombies too (the SSH test fleet's nodes, the benchmarks, other suites running
at the same time). In here the job sees only the parents a test made. Closing the node kills the namespace's
init, and with it every process in it.

    node = PidNamespaceNode()
    parent = node.parent("zc-demo", 3)           # a parent named zc-demo (comm) with 3 zombies
    result = node.playbook("playbooks/site.yml", "-e", "...")
    node.zombies(parent); node.more(parent); node.close()
"""

import json
import os
import subprocess
import sys

from helpers.ansible_run import ROOT

# PID 1 of the namespace: starts parents and playbooks on request (one JSON line in, one out), reaps orphans.
SERVER = r'''
import json, os, signal, subprocess, sys, threading, time
PARENT = """
import ctypes, os, signal, sys, time
name, count = sys.argv[1], int(sys.argv[2])
ctypes.CDLL(None).prctl(15, name.encode(), 0, 0, 0)            # PR_SET_NAME: the comm the job names it by
def make(*_):
    for _ in range(count):
        if os.fork() == 0:
            os._exit(0)
def stop(*_):
    while True:
        try:
            if os.waitpid(-1, 0)[0] <= 0:
                break
        except ChildProcessError:
            break
    os._exit(0)
signal.signal(signal.SIGTERM, stop)
signal.signal(signal.SIGUSR1, make)
make()
print("ready", flush=True)
while True:
    time.sleep(3600)
"""
known = set()

def reap_orphans():
    while True:
        try:
            info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            info = None
        if info is not None and info.si_pid not in known:
            try:
                os.waitpid(info.si_pid, 0)
            except ChildProcessError:
                pass
            continue
        time.sleep(0.1)

threading.Thread(target=reap_orphans, daemon=True).start()
parents = {}

def zombies(pid):
    found = []
    for task in os.listdir("/proc/%d/task" % pid):
        try:
            children = open("/proc/%d/task/%s/children" % (pid, task)).read().split()
        except OSError:
            continue
        for child in children:
            try:
                if open("/proc/%s/stat" % child).read().rsplit(")", 1)[1].split()[0] == "Z":
                    found.append(int(child))
            except OSError:
                pass
    return sorted(found)

def wait_zombies(pid, count):
    deadline = time.monotonic() + 10
    while len(zombies(pid)) < count and time.monotonic() < deadline:
        time.sleep(0.02)
    return zombies(pid)

for line in sys.stdin:
    request = json.loads(line)
    op = request["op"]
    if op == "parent":
        process = subprocess.Popen([sys.executable, "-c", PARENT, request["name"], str(request["count"])],
                                   stdout=subprocess.PIPE, text=True)
        known.add(process.pid)
        process.stdout.readline()
        parents[process.pid] = process
        answer = {"pid": process.pid, "zombies": wait_zombies(process.pid, request["count"])}
    elif op == "zombies":
        answer = {"zombies": zombies(request["pid"])}
    elif op == "more":
        before = len(zombies(request["pid"]))
        os.kill(request["pid"], signal.SIGUSR1)
        answer = {"zombies": wait_zombies(request["pid"], before + request["count"])}
    elif op == "run":
        process = subprocess.Popen(request["argv"], cwd=request["cwd"], env=request["env"], stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)
        known.add(process.pid)
        try:
            out, err = process.communicate(timeout=request["timeout"])
        except subprocess.TimeoutExpired:
            process.kill()
            out, err = process.communicate()
        answer = {"returncode": process.returncode, "stdout": out, "stderr": err}
    else:
        answer = {"error": "unknown op %s" % op}
    print(json.dumps(answer), flush=True)
'''


class PidNamespaceNode:
    def __init__(self):
        self.process = subprocess.Popen(
            ["unshare", "--pid", "--fork", "--kill-child", "--mount", "--mount-proc", sys.executable, "-u", "-c",
             SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def _ask(self, **request):
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError("the namespace's init ended (exit %s)" % self.process.poll())
        return json.loads(line)

    def parent(self, name, count):
        """A parent named name (its comm, 15 characters at most) holding count zombies: its pid in the namespace."""
        answer = self._ask(op="parent", name=name, count=count)
        assert len(answer["zombies"]) == count, answer
        return answer["pid"]

    def zombies(self, pid):
        return self._ask(op="zombies", pid=pid)["zombies"]

    def more(self, pid, count):
        """The parent makes count more zombies (SIGUSR1)."""
        return self._ask(op="more", pid=pid, count=count)["zombies"]

    def playbook(self, *args, env=None, timeout=300):
        """ansible-playbook from the repository root, inside the namespace: a CompletedProcess-like object."""
        full_env = dict(os.environ, ANSIBLE_FORCE_COLOR="0", ANSIBLE_NOCOLOR="1")
        full_env.update(env or {})
        binary = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
        answer = self._ask(op="run", argv=[binary] + list(args), cwd=ROOT, env=full_env, timeout=timeout)
        return subprocess.CompletedProcess(args, answer["returncode"], answer["stdout"], answer["stderr"])

    def close(self):
        """Kill the namespace's init: --kill-child makes the kernel end every process of the namespace."""
        if self.process.poll() is None:
            self.process.stdin.close()
            self.process.kill()
        self.process.wait(timeout=30)
        self.process.stdout.close()
