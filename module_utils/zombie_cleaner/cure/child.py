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
import os
import pickle
import select
import time

_MAX_FD = 1 << 20


def start(work):
    """Fork; in the child run work(send), where send(value) sends value (once) and closes the pipe; the child
    ends when work returns. Returns (pid, the reading end) to the caller."""
    reader, writer = os.pipe()
    pid = os.fork()
    if pid:
        os.close(writer)
        return pid, reader
    code = 0                                               # the child: nothing but work and its answer
    try:
        os.close(reader)
        os.setsid()
        null = os.open(os.devnull, os.O_RDWR)
        for target in (0, 1, 2):
            os.dup2(null, target)
        os.closerange(3, writer)
        os.closerange(writer + 1, _MAX_FD)
        work(_Sender(writer))
    except BaseException:
        code = 1
    finally:
        os._exit(code)


class _Sender:
    def __init__(self, writer):
        self.writer = writer

    def __call__(self, value):
        if self.writer is None:
            return
        try:
            data = pickle.dumps(value)
        except BaseException as error:                     # an answer that cannot be sent is still said
            data = pickle.dumps((False, OSError(errno.EIO, "the child could not send its answer: %r" % (error,))))
        try:
            while data:
                data = data[os.write(self.writer, data):]
        finally:
            os.close(self.writer)
            self.writer = None


def answer(reader, deadline):
    """Everything the child sends until it closes the pipe: the unpickled answer, NO_ANSWER if it closed the pipe
    without one (it died), or None past deadline. The reading end is closed either way."""
    chunks = []
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([reader], [], [], left)[0]:
                return None
            chunk = os.read(reader, 65536)
            if not chunk:
                return pickle.loads(b"".join(chunks)) if chunks else NO_ANSWER
            chunks.append(chunk)
    finally:
        os.close(reader)


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
