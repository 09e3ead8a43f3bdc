# -*- coding: utf-8 -*-
# Copyright: zombie-cleaner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Runtime command lines (docker, podman, ctr, crictl), each bounded by a timeout.

Argument lists only, never a shell. A CLI that hangs is killed with its
whole process group when its time is up, and the caller escalates. Reading
its output is bounded too: a helper that left the group (setsid) may hold
the pipes open for ever.
"""

from __future__ import annotations

import os
import selectors
import shutil
import signal
import subprocess
import time

from ansible.module_utils.zombie_cleaner import waiter

# After the command exited, or was killed, its pipes are read this much longer for output still on
# its way; then they are closed, whoever else holds them.
PIPE_GRACE = 0.5
# The shortest bound a command gets, so that one that is quick still can run.
MIN_TIMEOUT = 0.1


class CommandResult:
    def __init__(self, argv, returncode, stdout, stderr, seconds, timed_out, missing=False, note=None):
        self.argv = argv
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        self.seconds = seconds
        self.timed_out = timed_out
        self.missing = missing
        self.note = note

    @property
    def ok(self):
        return self.returncode == 0 and not self.timed_out

    def describe(self):
        if self.missing:
            return "%s: not installed" % self.argv[0]
        if self.note:
            return "%s: %s" % (" ".join(self.argv[:3]), self.note)
        if self.timed_out:
            return "%s timed out after %.1fs" % (" ".join(self.argv[:3]), self.seconds)
        if self.returncode != 0:
            return "%s exited %d: %s" % (" ".join(self.argv[:3]), self.returncode, (self.stderr or self.stdout).strip()[:300])
        return "%s ok in %.1fs" % (" ".join(self.argv[:3]), self.seconds)


def _read_pipes(process, until, grace):
    """Read stdout and stderr until both are closed, or the monotonic time `until`, or `grace` seconds
    after the process exited (what it left behind may hold them). Returns {pipe: bytes read}."""
    chunks = {process.stdout: [], process.stderr: []}
    exited_at = None
    with selectors.DefaultSelector() as selector:
        for pipe in chunks:
            selector.register(pipe, selectors.EVENT_READ)
        while selector.get_map():
            now = time.monotonic()
            if exited_at is None and process.poll() is not None:
                exited_at = now
            stop = until if exited_at is None else min(until, exited_at + grace)
            if now >= stop:
                break
            # Wake up now and then to notice an exit while a helper keeps the pipes open.
            for key, _ in selector.select(min(stop - now, 0.05)):
                data = os.read(key.fd, 65536)
                if data:
                    chunks[key.fileobj].append(data)
                else:
                    selector.unregister(key.fileobj)
    return {pipe: b"".join(parts) for pipe, parts in chunks.items()}


def _kill_group(process):
    # The command runs in its own session (start_new_session): its group id is its pid, which the
    # kernel does not hand out again while the group has members.
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _text(data):
    return data.decode("utf-8", errors="replace")


def run_bounded(argv, timeout, deadline=None):
    """Run argv for at most timeout seconds, and never past deadline (a time.monotonic() value, e.g. the
    whole remediation's). Returns a CommandResult; never waits on a pipe that someone else holds open."""
    started = time.monotonic()
    if shutil.which(argv[0]) is None:
        return CommandResult(argv, 127, "", "", 0.0, False, missing=True)
    until = started + max(timeout, MIN_TIMEOUT)
    if deadline is not None:
        if deadline - started < MIN_TIMEOUT:
            return CommandResult(argv, None, "", "", 0.0, True, note="not run: the remediation's deadline has passed")
        until = min(until, deadline)
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               start_new_session=True, stdin=subprocess.DEVNULL)
    try:
        output = _read_pipes(process, until, PIPE_GRACE)
        try:
            process.wait(max(0.0, until - time.monotonic()))   # it may close its pipes and go on
            timed_out = False
        except subprocess.TimeoutExpired:
            timed_out = True
        if timed_out:
            # Only on a timeout: a command that is done may have started something that must live
            # (a container's monitor). A helper that called setsid is not in the group; it loses the
            # pipes when they are closed below.
            _kill_group(process)
            more = _read_pipes(process, time.monotonic() + PIPE_GRACE, PIPE_GRACE)
            output = {pipe: output[pipe] + more[pipe] for pipe in output}
            try:
                process.wait(PIPE_GRACE)
            except subprocess.TimeoutExpired:
                pass   # SIGKILLed but not gone yet (uninterruptible sleep): reported as timed out
    finally:
        process.stdout.close()
        process.stderr.close()
    return CommandResult(argv, None if timed_out else process.returncode, _text(output[process.stdout]),
                         _text(output[process.stderr]), time.monotonic() - started, timed_out)


class Runtime:
    """What the remediation needs from a runtime: a graceful restart and a start after a kill.

    Every method takes the bound of one operation (timeout) and an optional overall deadline
    (time.monotonic() value) that no command runs past."""

    name = "unknown"
    binary = None

    def __init__(self, binaries):
        self.binaries = binaries

    def graceful_restart(self, record, timeout, deadline=None):
        raise NotImplementedError

    def start_again(self, record, timeout, deadline=None):
        """Bring a container back after its init was killed; None when someone else does (kubelet)."""
        raise NotImplementedError

    def running(self, record, timeout, deadline=None):
        """True/False when the runtime can tell whether the container runs again, None if it cannot."""
        return None

    def version(self, timeout=5, deadline=None):
        result = run_bounded([self.binaries[self.binary], "--version"], timeout, deadline)
        return result.stdout.strip().splitlines()[0] if result.ok and result.stdout.strip() else None


def _grace(timeout):
    # The runtime's own stop grace must end well inside our bound, so its
    # SIGKILL (for an init that ignores SIGTERM) still happens in time.
    return max(1, int(timeout / 3))


def _earliest(timeout, deadline):
    """The monotonic time by which an operation bounded by timeout and deadline must end."""
    end = time.monotonic() + timeout
    return end if deadline is None else min(end, deadline)


def _left(end):
    return max(MIN_TIMEOUT, end - time.monotonic())


class DockerLike(Runtime):
    """docker and podman share their CLI: restart -t, start, inspect."""

    def _cli(self, *args):
        return [self.binaries[self.binary]] + list(args)

    def running(self, record, timeout, deadline=None):
        result = run_bounded(self._cli("inspect", "-f", "{{.State.Running}}", record["container_id"]), timeout,
                             deadline)
        return result.ok and result.stdout.strip() == "true"

    def graceful_restart(self, record, timeout, deadline=None):
        return [run_bounded(self._cli("restart", "-t", str(_grace(timeout)), record["container_id"]), timeout,
                            deadline)]

    def start_again(self, record, timeout, deadline=None):
        return [run_bounded(self._cli("start", record["container_id"]), timeout, deadline)]


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

    def _task_running(self, record, timeout, deadline=None):
        """(the ctr task ls result, whether the container's task is RUNNING)."""
        result = run_bounded(self._ctr(record, "task", "ls"), timeout, deadline)
        return result, result.ok and any(line.split()[:1] == [record["container_id"]] and "RUNNING" in line
                                         for line in result.stdout.splitlines()[1:])

    def running(self, record, timeout, deadline=None):
        if self.kubelet_managed(record):
            return None
        return self._task_running(record, timeout, deadline)[1]

    def _ctr(self, record, *args):
        return [self.binaries["ctr"], "-n", record.get("containerd_namespace") or "default"] + list(args)

    @staticmethod
    def kubelet_managed(record):
        # k8s.io alone: a CRI container whose pod cannot be read is still the kubelet's, never ctr's to restart.
        return record.get("containerd_namespace") == "k8s.io"

    def graceful_restart(self, record, timeout, deadline=None):
        end = _earliest(timeout, deadline)
        if self.kubelet_managed(record) and shutil.which(self.binaries["crictl"]):
            return [run_bounded([self.binaries["crictl"], "stop", "--timeout", str(_grace(timeout)),
                                 record["container_id"]], timeout, deadline)]
        steps = [run_bounded(self._ctr(record, "task", "kill", "-s", "SIGTERM", record["container_id"]), timeout,
                             deadline)]
        if not steps[-1].ok:
            return steps
        # ctr task kill returns at once: wait for the task to stop, within the bound.
        def stopped():
            status, running = self._task_running(record, _left(end), end)
            return None if status.ok and running else status
        status = waiter.poll_until(stopped, end - time.monotonic(), 0.2)
        if status is None:
            steps.append(CommandResult(self._ctr(record, "task", "ls"), None, "", "task still running", timeout, True))
            return steps
        if not status.ok:
            steps.append(status)
            return steps
        if self.kubelet_managed(record):
            return steps
        return steps + self.start_again(record, _left(end), end)

    def start_again(self, record, timeout, deadline=None):
        if self.kubelet_managed(record):
            return None
        end = _earliest(timeout, deadline)
        steps = [run_bounded(self._ctr(record, "task", "delete", record["container_id"]), timeout, end)]
        steps.append(run_bounded(self._ctr(record, "task", "start", "-d", record["container_id"]), _left(end), end))
        return steps


class Crio(Runtime):
    """CRI-O is always kubelet-managed: stop through CRI and let the kubelet start a new container."""

    name = "cri-o"
    binary = "crictl"

    def graceful_restart(self, record, timeout, deadline=None):
        return [run_bounded([self.binaries["crictl"], "stop", "--timeout", str(_grace(timeout)),
                             record["container_id"]], timeout, deadline)]

    def start_again(self, record, timeout, deadline=None):
        return None

    def version(self, timeout=5, deadline=None):
        result = run_bounded([self.binaries["crictl"], "version"], timeout, deadline)
        return result.stdout.strip().replace("\n", "; ") if result.ok else None


RUNTIMES = {"docker": Docker, "podman": Podman, "containerd": Containerd, "cri-o": Crio}
DEFAULT_BINARIES = {"docker": "docker", "podman": "podman", "ctr": "ctr", "crictl": "crictl"}


def for_record(record, binaries=None):
    """The runtime adapter for a scanned container, or None (CRI-O: not runnable here, see README)."""
    cls = RUNTIMES.get(record.get("runtime"))
    merged = dict(DEFAULT_BINARIES)
    merged.update({key: value for key, value in (binaries or {}).items() if value})
    return cls(merged) if cls else None
