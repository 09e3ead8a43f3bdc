"""Real containers under containerd (ctr) and dockerd, from a locally built busybox rootfs.

No registry is reachable: the rootfs is busybox-static with relative applet links,
used directly by `ctr run --rootfs` and imported into Docker with `docker import`.
"""

import json
import os
import shutil
import subprocess
import uuid

from helpers.zombies import wait_for, zombie_children

WORK = os.environ.get("ZC_TEST_WORK", "/var/tmp/zombie-cleaner-test")
ROOTFS = os.path.join(WORK, "rootfs")
DOCKER_IMAGE = "zombie-cleaner-test/busybox:latest"
TEST_LABEL = "zombie-cleaner-test"
# Plain containerd containers live in a namespace of their own; k8s.io is the kubelet's (CRI) namespace, where
# a container is always the kubelet's and one without a readable pod is protected as "identity unknown".
CTR_NAMESPACE = "zc-test"
CRI_NAMESPACE = "k8s.io"
DOCKER = shutil.which("docker", path="/usr/bin") or "docker"   # the daemon's own client


def zombie_command(count):
    """PID 1 starts `count` children that exit at once, then becomes sleep, which never reaps."""
    return ["/bin/sh", "-c", "for i in $(seq %d); do /bin/sleep 0 & done; exec /bin/sleep 100000" % count]


def build_rootfs():
    if os.path.exists(os.path.join(ROOTFS, "bin", "sh")):
        return ROOTFS
    busybox = shutil.which("busybox") or "/bin/busybox"
    staging = ROOTFS + ".new"
    shutil.rmtree(staging, ignore_errors=True)
    for sub in ("bin", "proc", "sys", "dev", "tmp", "etc"):
        os.makedirs(os.path.join(staging, sub))
    shutil.copy(busybox, os.path.join(staging, "bin", "busybox"))
    applets = subprocess.run([busybox, "--list"], check=True, capture_output=True, text=True).stdout.split()
    for applet in applets:
        if applet != "busybox":
            os.symlink("busybox", os.path.join(staging, "bin", applet))
    with open(os.path.join(staging, "etc", "passwd"), "w") as handle:
        handle.write("root:x:0:0:root:/:/bin/sh\n")
    os.rename(staging, ROOTFS)
    return ROOTFS


def run(argv, timeout=60, check=True):
    return subprocess.run(argv, check=check, capture_output=True, text=True, timeout=timeout)


def runtimes_available():
    problems = []
    if run(["ctr", "version"], check=False).returncode != 0:
        problems.append("containerd is not answering on /run/containerd/containerd.sock")
    if run([DOCKER, "info"], check=False).returncode != 0:
        problems.append("dockerd is not answering on /var/run/docker.sock")
    return problems


class CtrContainer:
    """A containerd task (namespace zc-test, or k8s.io for CRI-style pods), optionally joined to a pod sandbox's
    shim by its io.kubernetes.cri.sandbox-id annotation."""

    def __init__(self, name=None, command=None, annotations=None, cgroup=None, zombies=0, extra=(),
                 namespace=CTR_NAMESPACE):
        self.id = name or "zc-" + uuid.uuid4().hex[:10]
        self.namespace = namespace
        argv = ["ctr", "-n", namespace, "run", "-d", "--env", "PATH=/bin", "--label", TEST_LABEL + "=1"]
        argv += list(extra)
        for key, value in (annotations or {}).items():
            argv += ["--annotation", "%s=%s" % (key, value)]
        if cgroup:
            argv += ["--cgroup", cgroup]
        argv += ["--rootfs", build_rootfs(), self.id] + (command or zombie_command(zombies))
        run(argv)
        self.init_pid = self._task_pid()
        if zombies:
            wait_for(lambda: len(zombie_children(self.init_pid)) == zombies, "%d zombies in %s" % (zombies, self.id))
        self.zombies = zombie_children(self.init_pid)

    def _task_pid(self):
        for line in run(["ctr", "-n", self.namespace, "task", "ls"]).stdout.splitlines()[1:]:
            parts = line.split()
            if parts and parts[0] == self.id:
                return int(parts[1])
        raise AssertionError("no task for %s" % self.id)

    def remove(self):
        # delete -f kills what still runs and waits for the task to go.
        run(["ctr", "-n", self.namespace, "task", "delete", "-f", self.id], check=False)
        run(["ctr", "-n", self.namespace, "container", "delete", self.id], check=False)


class DockerContainer:
    def __init__(self, name=None, command=None, labels=None, zombies=0, extra=()):
        ensure_docker_image()
        self.name = name or "zc-" + uuid.uuid4().hex[:10]
        argv = [DOCKER, "run", "-d", "--name", self.name, "--network", "none", "--label", TEST_LABEL + "=1"]
        for key, value in (labels or {}).items():
            argv += ["--label", "%s=%s" % (key, value)]
        argv += list(extra) + [DOCKER_IMAGE] + (command or zombie_command(zombies))
        self.id = run(argv).stdout.strip()
        self.init_pid = self.inspect()["State"]["Pid"]
        if zombies:
            wait_for(lambda: len(zombie_children(self.init_pid)) == zombies, "%d zombies in %s" % (zombies, self.name))
        self.zombies = zombie_children(self.init_pid)

    def inspect(self):
        return json.loads(run([DOCKER, "inspect", self.id]).stdout)[0]

    def exec(self, *command):
        return run([DOCKER, "exec", self.id] + list(command), check=False)

    def remove(self):
        run([DOCKER, "rm", "-f", self.id], check=False)


def ensure_docker_image():
    if run([DOCKER, "image", "inspect", DOCKER_IMAGE], check=False).returncode == 0:
        return
    rootfs = build_rootfs()
    tar = subprocess.Popen(["tar", "-C", rootfs, "-c", "."], stdout=subprocess.PIPE)
    subprocess.run([DOCKER, "import", "-", DOCKER_IMAGE], stdin=tar.stdout, check=True, capture_output=True)
    tar.stdout.close()
    tar.wait()


def podman_available():
    return shutil.which("podman") is not None and run(["podman", "info"], check=False).returncode == 0


class PodmanContainer:
    """A podman container (conmon + runc). podman raises RLIMIT_NOFILE/NPROC by default, which this
    sandbox refuses without CAP_SYS_RESOURCE; explicit lower ulimits make it run. RLIMIT_NPROC counts
    every task of uid 0 on the machine (the container has no CAP_SYS_RESOURCE), so it must stay far
    above what the daemons and Ansible use: 32768 (this machine's pid_max; higher values are refused here)."""

    ULIMITS = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=32768:32768"]

    def __init__(self, name=None, zombies=0, command=None):
        ensure_podman_image()
        self.name = name or "zc-" + uuid.uuid4().hex[:10]
        self.id = run(["podman", "run", "-d", "--name", self.name, "--network", "none", "--label",
                       TEST_LABEL + "=1"] + self.ULIMITS + [PODMAN_IMAGE] + (command or zombie_command(zombies))
                      ).stdout.strip()
        self.init_pid = self.pid()
        if zombies:
            wait_for(lambda: len(zombie_children(self.init_pid)) == zombies, "%d zombies in %s" % (zombies, self.name))
        self.zombies = zombie_children(self.init_pid)

    def pid(self):
        return int(run(["podman", "inspect", "--format", "{{.State.Pid}}", self.id]).stdout.strip())

    def remove(self):
        run(["podman", "rm", "-f", "-t", "0", self.id], check=False)


PODMAN_IMAGE = "localhost/zombie-cleaner-test/busybox:latest"


def ensure_podman_image():
    if run(["podman", "image", "exists", PODMAN_IMAGE], check=False).returncode == 0:
        return
    tar = subprocess.Popen(["tar", "-C", build_rootfs(), "-c", "."], stdout=subprocess.PIPE)
    subprocess.run(["podman", "import", "-", PODMAN_IMAGE], stdin=tar.stdout, check=True, capture_output=True)
    tar.stdout.close()
    tar.wait()


def fill_pids_once_command(attempts, marker):
    """A helper shell forks `attempts` children (or until the pids cgroup refuses) and exits;
    its children and itself end as zombies of PID 1 (sleep), which never reaps. After a restart
    (marker present in the container's filesystem) PID 1 just sleeps, as a fixed image would.
    Leaves attempts + 1 zombies when nothing refuses a fork. The helper execs its final sleep:
    a shell waiting for a foreground child would reap some of its background children first."""
    return ["/bin/sh", "-c",
            "if [ ! -f %s ]; then touch %s; /bin/sh -c 'i=0; while [ $i -lt %d ]; do /bin/sleep 0 & "
            "i=$((i+1)); done; exec /bin/sleep 1' & fi; exec /bin/sleep 100000" % (marker, marker, attempts)]


# PID 1 of this command never calls wait4: children in the background, then exec sleep.
NO_WAIT_ZOMBIES_COMMAND = ["/bin/sh", "-c", "for i in 1 2 3; do /bin/sleep 0 & done; exec /bin/sleep 100000"]


def no_wait4_seccomp_profile(directory):
    """A Docker seccomp profile that kills the process on wait4: reaping in place must never be tried there."""
    path = os.path.join(str(directory), "no-wait4.json")
    with open(path, "w") as handle:
        json.dump({"defaultAction": "SCMP_ACT_ALLOW",
                   "syscalls": [{"names": ["wait4"], "action": "SCMP_ACT_KILL_PROCESS"}]}, handle)
    return path


def pids_exhausted_docker_container():
    """The seeds' failure: PID 1 forked past a pids limit of 6 and reaps nothing, so the container's pids
    cgroup is full (5 zombies) and every fork in it fails. Returns the container; the caller removes it."""
    box = DockerContainer(command=fill_pids_once_command(10, "/tmp/filled"), extra=["--pids-limit", "6"])
    try:
        pids = "/sys/fs/cgroup/pids/docker/%s/" % box.id
        wait_for(lambda: open(pids + "pids.current").read() == open(pids + "pids.max").read(),
                 "the pids cgroup to fill")
        wait_for(lambda: len(zombie_children(box.init_pid)) == 5, "5 zombies under PID 1")
        fork = box.exec("/bin/sh", "-c", "/bin/sleep 0 & wait")
        assert fork.returncode != 0 and "Resource temporarily unavailable" in fork.stderr, fork.stderr
    except BaseException:
        box.remove()
        raise
    return box
