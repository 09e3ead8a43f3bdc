# -*- coding: utf-8 -*-
# Copyright: zombie-cleaner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Runtime command lines (docker, podman, ctr, crictl), each bounded by a timeout.

Argument lists only, never a shell. A CLI that hangs is killed with its
whole process group when its time is up, and the caller escalates.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time


class CommandResult:
    def __init__(self, argv, returncode, stdout, stderr, seconds, timed_out, missing=False):
        self.argv = argv
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        self.seconds = seconds
        self.timed_out = timed_out
        self.missing = missing

    @property
    def ok(self):
        return self.returncode == 0 and not self.timed_out

    def describe(self):
        if self.missing:
            return "%s: not installed" % self.argv[0]
        if self.timed_out:
            return "%s timed out after %.1fs" % (" ".join(self.argv[:3]), self.seconds)
        if self.returncode != 0:
            return "%s exited %d: %s" % (" ".join(self.argv[:3]), self.returncode, (self.stderr or self.stdout).strip()[:300])
        return "%s ok in %.1fs" % (" ".join(self.argv[:3]), self.seconds)


def run_bounded(argv, timeout):
    started = time.monotonic()
    if shutil.which(argv[0]) is None:
        return CommandResult(argv, 127, "", "", 0.0, False, missing=True)
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True, stdin=subprocess.DEVNULL)
    try:
        stdout, stderr = process.communicate(timeout=max(timeout, 0.1))
        return CommandResult(argv, process.returncode, stdout, stderr, time.monotonic() - started, False)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        stdout, stderr = process.communicate()
        return CommandResult(argv, None, stdout, stderr, time.monotonic() - started, True)


class Runtime:
    """What the remediation needs from a runtime: a graceful restart and a start after a kill."""

    name = "unknown"
    binary = None

    def __init__(self, binaries):
        self.binaries = binaries

    def graceful_restart(self, record, timeout):
        raise NotImplementedError

    def start_again(self, record, timeout):
        """Bring a container back after its init was killed; None when someone else does (kubelet)."""
        raise NotImplementedError

    def running(self, record, timeout):
        """True/False when the runtime can tell whether the container runs again, None if it cannot."""
        return None

    def version(self, timeout=5):
        result = run_bounded([self.binaries[self.binary], "--version"], timeout)
        return result.stdout.strip().splitlines()[0] if result.ok and result.stdout.strip() else None


def _grace(timeout):
    # The runtime's own stop grace must end well inside our bound, so its
    # SIGKILL (for an init that ignores SIGTERM) still happens in time.
    return max(1, int(timeout / 3))


class DockerLike(Runtime):
    """docker and podman share their CLI: restart -t, start, inspect."""

    def _cli(self, *args):
        return [self.binaries[self.binary]] + list(args)

    def running(self, record, timeout):
        result = run_bounded(self._cli("inspect", "-f", "{{.State.Running}}", record["container_id"]), timeout)
        return result.ok and result.stdout.strip() == "true"

    def graceful_restart(self, record, timeout):
        return [run_bounded(self._cli("restart", "-t", str(_grace(timeout)), record["container_id"]), timeout)]

    def start_again(self, record, timeout):
        return [run_bounded(self._cli("start", record["container_id"]), timeout)]


class Docker(DockerLike):
    name = "docker"
    binary = "docker"


class Podman(DockerLike):
    name = "podman"
    binary = "podman"


class Containerd(Runtime):
    """CRI containers are stopped (the kubelet starts a new one); plain ones are restarted with ctr."""

    name = "containerd"
    binary = "ctr"

    def _task_running(self, record, timeout):
        """(the ctr task ls result, whether the container's task is RUNNING)."""
        result = run_bounded(self._ctr(record, "task", "ls"), timeout)
        return result, result.ok and any(line.split()[:1] == [record["container_id"]] and "RUNNING" in line
                                         for line in result.stdout.splitlines()[1:])

    def running(self, record, timeout):
        if self.kubelet_managed(record):
            return None
        return self._task_running(record, timeout)[1]

    def _ctr(self, record, *args):
        return [self.binaries["ctr"], "-n", record.get("containerd_namespace") or "default"] + list(args)

    @staticmethod
    def kubelet_managed(record):
        # k8s.io alone: a CRI container whose pod cannot be read is still the kubelet's, never ctr's to restart.
        return record.get("containerd_namespace") == "k8s.io"

    def graceful_restart(self, record, timeout):
        deadline = time.monotonic() + timeout
        if self.kubelet_managed(record) and shutil.which(self.binaries["crictl"]):
            return [run_bounded([self.binaries["crictl"], "stop", "--timeout", str(_grace(timeout)),
                                 record["container_id"]], timeout)]
        steps = [run_bounded(self._ctr(record, "task", "kill", "-s", "SIGTERM", record["container_id"]), timeout)]
        if not steps[-1].ok:
            return steps
        # ctr task kill returns at once: wait for the task to stop, within the bound.
        while True:
            status, running = self._task_running(record, max(0.1, deadline - time.monotonic()))
            if not status.ok:
                steps.append(status)
                return steps
            if not running:
                break
            if time.monotonic() >= deadline:
                steps.append(CommandResult(status.argv, None, "", "task still running", timeout, True))
                return steps
            time.sleep(0.2)
        if self.kubelet_managed(record):
            return steps
        return steps + self.start_again(record, max(0.1, deadline - time.monotonic()))

    def start_again(self, record, timeout):
        if self.kubelet_managed(record):
            return None
        deadline = time.monotonic() + timeout
        steps = [run_bounded(self._ctr(record, "task", "delete", record["container_id"]), timeout)]
        steps.append(run_bounded(self._ctr(record, "task", "start", "-d", record["container_id"]),
                                 max(0.1, deadline - time.monotonic())))
        return steps


class Crio(Runtime):
    """CRI-O is always kubelet-managed: stop through CRI and let the kubelet start a new container."""

    name = "cri-o"
    binary = "crictl"

    def graceful_restart(self, record, timeout):
        return [run_bounded([self.binaries["crictl"], "stop", "--timeout", str(_grace(timeout)),
                             record["container_id"]], timeout)]

    def start_again(self, record, timeout):
        return None

    def version(self, timeout=5):
        result = run_bounded([self.binaries["crictl"], "version"], timeout)
        return result.stdout.strip().replace("\n", "; ") if result.ok else None


RUNTIMES = {"docker": Docker, "podman": Podman, "containerd": Containerd, "cri-o": Crio}
DEFAULT_BINARIES = {"docker": "docker", "podman": "podman", "ctr": "ctr", "crictl": "crictl"}


def for_record(record, binaries=None):
    """The runtime adapter for a scanned container, or None (CRI-O: not runnable here, see README)."""
    cls = RUNTIMES.get(record.get("runtime"))
    merged = dict(DEFAULT_BINARIES)
    merged.update({key: value for key, value in (binaries or {}).items() if value})
    return cls(merged) if cls else None
