"""cure/child: the module's own child processes (the tracer of a reap in place, bounded reads). An answer nobody
reads, one cut short, a fork that fails: none may raise into a tracer that holds a parent, or lose the module's
result (review findings on the tracer process)."""

import errno
import os
import time

import pytest

from ansible.module_utils.zombie_cleaner.cure import child, reaper


def test_a_send_nobody_reads_never_raises_and_the_child_goes_on(tmp_path):
    """The module died (or stopped waiting) before the tracer's answer: EPIPE. The tracer must go on to restore
    the parent's registers, not die of the error (it did: BrokenPipeError, and its end released the parent)."""
    marker = tmp_path / "went-on"

    def work(send):
        while not (tmp_path / "reader-closed").exists():
            time.sleep(0.005)
        send({"verdict": "safe"})
        marker.write_text("after the send")
    pid, reader = child.start(work)
    os.close(reader)
    (tmp_path / "reader-closed").write_text("")
    assert child.ended(pid, 10.0) == "exit status 0"
    assert marker.read_text() == "after the send"


def test_an_answer_cut_short_is_no_answer_not_an_exception():
    def work(send):
        os.write(send.writer, b"\x80\x04\x95\x10\x00\x00")      # the start of a pickle, then the end
        os._exit(0)
    pid, reader = child.start(work)
    assert child.answer(reader, time.monotonic() + 10) is child.NO_ANSWER
    assert child.ended(pid, 5.0) == "exit status 0"


def test_an_answer_that_cannot_be_pickled_is_said_as_an_error():
    pid, reader = child.start(lambda send: send({"verdict": lambda: None}))
    got = child.answer(reader, time.monotonic() + 10)
    assert isinstance(got, OSError) and "could not send its answer" in str(got)
    child.ended(pid, 5.0)


def test_a_fork_that_fails_leaves_no_descriptor_open(monkeypatch):
    def no_pids():
        raise OSError(errno.EAGAIN, "Resource temporarily unavailable")
    before = sorted(os.listdir("/proc/self/fd"))
    monkeypatch.setattr(os, "fork", no_pids)
    with pytest.raises(OSError):
        child.start(lambda send: send(1))
    assert sorted(os.listdir("/proc/self/fd")) == before


def test_the_child_holds_no_descriptor_of_the_caller_but_its_answer(tmp_path):
    held = os.open(str(tmp_path / "held"), os.O_CREAT | os.O_RDWR)
    try:
        pid, reader = child.start(lambda send: send(sorted(int(fd) for fd in os.listdir("/proc/self/fd"))))
        fds = child.answer(reader, time.monotonic() + 10)
        child.ended(pid, 5.0)
    finally:
        os.close(held)
    assert held not in fds and len([fd for fd in fds if fd > 2]) <= 2     # its pipe end (and the listing's)


@pytest.mark.parametrize("answer", [child.NO_ANSWER, OSError(errno.EIO, "cannot pickle"), ("not", "a dict")])
def test_a_tracer_without_a_whole_answer_is_an_alert(answer):
    """The reap must not raise on it (it promises never to), and the ladder must stop: left attached, unknown."""
    pid, reader = child.start(lambda send: None)
    child.answer(reader, time.monotonic() + 10)
    result = reaper._from_tracer(pid, answer)
    assert result["verdict"] == "failed" and result["left_attached"] is True
    assert result["reason"].startswith("LEFT ATTACHED?: the tracer process %d ended without an answer" % pid)
