# -*- coding: utf-8 -*-
# Copyright: zombie-cleaner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Child processes of the module's own, each holding nothing of the module's but one answer pipe.

Two users: reads that may hang on a parent's file system (ptrace.bounded) and the tracer of a reap in place
(reaper). Either may outlive the module: a read stuck in a hung FUSE file, a tracer waiting for a frozen
parent's thaw to give it its registers back. So the child has a session of its own (no signal sent to the
module's process group or terminal reaches it), stdio on /dev/null, and none of the module's descriptors (the
output pipe Ansible waits on is not held open by it). It sends one answer, pickled, and the pipe is closed.
"""

from __future__ import annotations

import errno
import gc
import os
import pickle
import select
import time

_MAX_FD = 1 << 20
STDERR = os.devnull      # where a child's stderr goes: nothing of ours writes there (the tests read it)


def start(work):
    """Fork; in the child run work(send), where send(value) sends value (once) and closes the pipe; the child
    ends when work returns. Returns (pid, the reading end) to the caller."""
    reader, writer = os.pipe()
    try:
        pid = os.fork()
    except OSError:                                        # EAGAIN: a node out of pids, the very case treated
        os.close(reader)
        os.close(writer)
        raise
    if pid:
        os.close(writer)
        return pid, reader
    code = 0                                               # the child: nothing but work and its answer
    try:
        # No collection: an object of the caller's finalized here would close a descriptor number that we
        # closed and that our own opens may have taken again.
        gc.disable()
        os.close(reader)
        os.setsid()
        null = os.open(os.devnull, os.O_RDWR)
        for target in (0, 1):
            os.dup2(null, target)
        os.dup2(os.open(STDERR, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600), 2)
        _close_all_but(writer)
        work(_Sender(writer))
    except BaseException:
        code = 1
    finally:
        os._exit(code)


def _close_all_but(keep):
    """Every descriptor above stdio but keep: those open, from /proc/self/fd (closerange up to a high bound
    closes them one by one on Pythons without close_range: 0.2 to 0.4 s on 3.8 and 3.9)."""
    try:
        fds = [int(name) for name in os.listdir("/proc/self/fd")]
    except OSError:
        os.closerange(3, keep)
        os.closerange(keep + 1, _MAX_FD)
        return
    for fd in fds:
        if fd > 2 and fd != keep:
            try:
                os.close(fd)
            except OSError:
                pass                                       # the listing's own descriptor, closed already


class _Sender:
    def __init__(self, writer):
        self.writer = writer

    def __call__(self, value):
        """Best effort, never raises: the caller (a tracer holding a parent) goes on whether anyone listens."""
        if self.writer is None:
            return
        try:
            data = pickle.dumps(value)
        except Exception as error:                         # an answer that cannot be sent is still said
            data = pickle.dumps(OSError(errno.EIO, "the child could not send its answer: %r" % (error,)))
        try:
            while data:
                data = data[os.write(self.writer, data):]
        except OSError:
            pass                                           # EPIPE: the caller stopped waiting (or died)
        finally:
            os.close(self.writer)
            self.writer = None


def answer(reader, deadline):
    """Everything the child sends until it closes the pipe: the unpickled answer (an OSError if it could not
    pickle its own), NO_ANSWER if it closed the pipe without a whole one (it died), or None past deadline. The
    reading end is closed either way."""
    chunks = []
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([reader], [], [], left)[0]:
                return None
            chunk = os.read(reader, 65536)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(reader)
    try:
        return pickle.loads(b"".join(chunks)) if chunks else NO_ANSWER
    except Exception:                                      # cut short: the child died while writing
        return NO_ANSWER


NO_ANSWER = object()


def ended(pid, timeout=0.0):
    """How the child ended ("killed by signal 9", "exit status 1"), or None if it still runs after timeout.
    Reaped here: it is ours."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            done, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return "already reaped"
        if done:
            if os.WIFSIGNALED(status):
                return "killed by signal %d" % os.WTERMSIG(status)
            return "exit status %d" % os.WEXITSTATUS(status)
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.001)
