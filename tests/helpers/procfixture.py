"""Fixture /proc trees and runtime directories, for runtimes that cannot run here."""

import json
import os
import shutil
from pathlib import Path

INITIAL_USER_NS = "user:[4026531837]"
# A root-owned binary of this machine: what /proc/PID/exe of a real shim resolves to.
ROOT_BINARY = os.path.realpath(shutil.which("true"))


class FakeNode:
    """A /proc tree plus runtime state directories under one temporary root."""

    def __init__(self, root, boot_id="11111111-2222-3333-4444-555555555555"):
        self.root = Path(root)
        self.proc = self.root / "proc"
        (self.proc / "sys/kernel/random").mkdir(parents=True, exist_ok=True)
        (self.proc / "sys/kernel/random/boot_id").write_text(boot_id + "\n")
        self.containerd = self.root / "run/containerd"
        self.docker = self.root / "var/lib/docker"
        self.crio = self.root / "run/containers/storage"
        self.podman = self.root / "var/lib/containers/storage"
        self.pod_logs = self.root / "var/log/pods"
        self.cgroup_root = self.root / "sys/fs/cgroup"
        self._next_start = 1000

    def runtime_files(self):
        return {"containerd_state_dir": str(self.containerd), "docker_data_dir": str(self.docker),
                "crio_storage_dir": str(self.crio), "podman_storage_dir": str(self.podman),
                "pod_log_dir": str(self.pod_logs)}

    def add(self, pid, ppid, name, state="S", start=None, cmdline=None, cgroup=None, uid=0, exe=ROOT_BINARY,
            user_ns=INITIAL_USER_NS, threads=1):
        """One process. cgroup: a path for every line (v1 + v2), or a full text.

        By default it runs as root in the host's user namespace from a root-owned binary, so a
        shim-like process is believed; uid, exe and user_ns make it an impostor."""
        if start is None:
            self._next_start += 1
            start = self._next_start
        directory = self.proc / str(pid)
        directory.mkdir(parents=True, exist_ok=True)
        rest = [state, ppid, pid, pid, 0, -1, 4194560, 0, 0, 0, 0, 1, 1, 0, 0, 20, 0, threads, 0, start,
                1000, 10, 18446744073709551615]
        (directory / "stat").write_text("%d (%s) %s\n" % (pid, name, " ".join(str(v) for v in rest)))
        argv = [] if state == "Z" else (cmdline or [name])
        (directory / "cmdline").write_bytes(b"".join(a.encode() + b"\0" for a in argv))
        if cgroup is None:
            cgroup = "/"
        if "\n" not in cgroup and ":" not in cgroup:
            path = cgroup
            v1 = "/" if state == "Z" else path
            cgroup = "12:pids:%s\n4:memory:%s\n1:name=systemd:%s\n0::%s\n" % (v1, v1, v1, path)
        (directory / "cgroup").write_text(cgroup)
        (directory / "status").write_text("Name:\t%s\nState:\t%s\nTracerPid:\t0\nUid:\t%d\t%d\t%d\t%d\n"
                                          % (name[:15], state, uid, uid, uid, uid))
        if state != "Z":
            (directory / "ns").mkdir(exist_ok=True)
            for link, target in ((directory / "exe", exe), (directory / "ns" / "user", user_ns)):
                if os.path.lexists(link):
                    os.unlink(link)
                os.symlink(target, link)
        return start

    def add_zombies(self, ppid, pids, name="child"):
        """Many zombies of one parent, quickly: only the stat file, all that a scan and a re-check read of a
        zombie (its start time is its pid)."""
        for pid in pids:
            directory = os.path.join(self.proc, str(pid))
            os.mkdir(directory)
            fd = os.open(os.path.join(directory, "stat"), os.O_WRONLY | os.O_CREAT, 0o644)
            os.write(fd, ("%d (%s) Z %d %d %d 0 -1 4194560 0 0 0 0 1 1 0 0 20 0 1 0 %d 1000 10 0\n"
                          % (pid, name, ppid, pid, pid, pid)).encode())
            os.close(fd)

    def pids_cgroup(self, path, current, limit, v1=True):
        """pids.current and pids.max (an int or "max") of one cgroup, v1 (pids/ hierarchy) or v2."""
        directory = self.cgroup_root / ("pids" if v1 else "") / path.strip("/")
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "pids.current").write_text("%d\n" % current)
        (directory / "pids.max").write_text("%s\n" % limit)
        if not v1:
            (self.cgroup_root / "cgroup.controllers").write_text("cpu memory pids\n")
        return directory

    def containerd_bundle(self, namespace, container_id, init_pid, annotations=None, v1=False):
        kind = "io.containerd.runtime.v1.linux" if v1 else "io.containerd.runtime.v2.task"
        bundle = self.containerd / kind / namespace / container_id
        bundle.mkdir(parents=True, exist_ok=True)
        (bundle / "config.json").write_text(json.dumps({"ociVersion": "1.0.2", "annotations": annotations or {}}))
        (bundle / "init.pid").write_text(str(init_pid))
        return bundle

    def docker_config(self, container_id, name, labels=None):
        directory = self.docker / "containers" / container_id
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "config.v2.json").write_text(json.dumps(
            {"ID": container_id, "Name": "/" + name, "Config": {"Labels": labels or {}}}))

    def conmon_userdata(self, storage, container_id, annotations=None, conmon_pid=None, init_pid=None,
                        pid_file="conmon-pidfile"):
        """CRI-O's (pid_file conmon-pidfile) or podman's (conmon.pid) userdata of one container."""
        directory = Path(storage) / "overlay-containers" / container_id / "userdata"
        directory.mkdir(parents=True, exist_ok=True)
        if annotations is not None:
            (directory / "config.json").write_text(json.dumps({"annotations": annotations}))
        if conmon_pid is not None:
            (directory / pid_file).write_text("%d\n" % conmon_pid)
        if init_pid is not None:
            (directory / "pidfile").write_text("%d" % init_pid)
        return directory

    def pod_log_dir(self, namespace, pod, uid):
        os.makedirs(self.pod_logs / ("%s_%s_%s" % (namespace, pod, uid)), exist_ok=True)


def blocked_pid(root, pid, syscall=None, mem=b"\x0f\x05", pc=0x401002, fds=None):
    """A fake /proc/PID under root for the reaper's pre-attach reads: `syscall` (as /proc/PID/syscall reads), a
    sparse `mem` holding `mem` just before pc, and fd links (fd number -> target)."""
    directory = Path(root) / str(pid)
    (directory / "fd").mkdir(parents=True)
    if syscall is not None:
        (directory / "syscall").write_text(syscall)
    if mem is not None:
        with open(directory / "mem", "wb") as handle:
            handle.seek(pc - len(mem))
            handle.write(mem)
    for fd, target in (fds or {}).items():
        os.symlink(target, directory / "fd" / str(fd))
    return str(root)
