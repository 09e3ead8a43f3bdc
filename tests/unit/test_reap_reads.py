"""Reap in place reads nothing of the parent's that could change it or hang the module (issue 14, items 8 and the
review's bounded reads): check mode takes no copy of its socket, a copy is never taken where it would re-tag
the socket (cgroup v1 net_cls/net_prio), and every read that may reach the parent's files is bounded in time.
Fake /proc trees and FIFOs (an open or read of a FIFO with no writer blocks, as a hung NFS/FUSE file does);
tests/integration/test_reap_safety.py does the same with a real hung FUSE file and a real net_cls hierarchy."""

import os
import signal
import time

import pytest

from ansible.module_utils.zombie_cleaner.cure import ptrace, reaper
from helpers import procfixture

PID = 4242


def fake_proc(tmp_path, self_cgroup="0::/\n", cgroups=None, syscall=None, fds=None, mem=b"\x0f\x05",
              pc=0x401002):
    """A fake /proc: self/cgroup, cgroups, and PID with syscall, fd links and a sparse mem."""
    (tmp_path / "self").mkdir()
    if self_cgroup is not None:
        (tmp_path / "self" / "cgroup").write_text(self_cgroup)
    if cgroups is not None:
        (tmp_path / "cgroups").write_text(cgroups)
    return procfixture.blocked_pid(tmp_path, PID, syscall, mem, pc, fds)


CGROUPS = "#subsys_name\thierarchy\tnum_cgroups\tenabled\ncpu\t1\t10\t1\nnet_cls\t%s\t9\t1\nnet_prio\t%s\t9\t1\n"
RECVFROM_ON_FD_5 = "45 0x5 0x7ffc0000 0x1 0x0 0x0 0x0 0x7ffc0000 0x401002\n"


@pytest.mark.parametrize("self_cgroup, cgroups, problem", [
    ("0::/\n", None, None),                                                   # cgroup v2 only
    ("4:memory:/a\n1:cpu:/\n0::/\n", CGROUPS % (0, 0), None),                 # v1, but not net_cls/net_prio
    ("3:net_cls,net_prio:/\n0::/\n", None, "net_cls and net_prio is in use"),
    ("3:net_prio:/\n0::/\n", None, "net_prio is in use"),
    ("1:cpu:/\n0::/\n", CGROUPS % (5, 0), "net_cls is in use"),               # bound, seen in /proc/cgroups
    (None, None, "is unknown"),                                               # unreadable: refuse
])
def test_a_socket_copy_that_would_re_tag_it_is_found(tmp_path, self_cgroup, cgroups, problem):
    found = reaper.socket_retag_problem(fake_proc(tmp_path, self_cgroup, cgroups))
    assert found is None if problem is None else problem in found, found


@pytest.fixture
def copies(monkeypatch):
    """Every copy of a parent's socket descriptor (pidfd_getfd) that would be taken: none is, really."""
    taken = []

    def no_copy(proc_root, pid, fd, option):
        taken.append((pid, fd, option))
        return False
    monkeypatch.setattr(reaper, "_socket_timeout", no_copy)
    return taken


def test_with_net_cls_in_use_the_socket_is_not_copied_and_the_parent_is_refused(tmp_path, copies):
    root = fake_proc(tmp_path, "3:net_cls,net_prio:/\n0::/\n", syscall=RECVFROM_ON_FD_5, fds={5: "socket:[77]"})
    for acting in (True, False):
        notes = []
        found = reaper.blocked_call_problem(root, PID, acting, notes)
        assert found.startswith("its leader is blocked in recvfrom on a socket whose timeout cannot be read "
                                "without changing the socket: cgroup v1 net_cls and net_prio is in use"), found
        assert "re-tag the socket with this module's classid and priority index" in found
        assert "unknown means refuse" in found
    assert copies == []


def test_check_mode_takes_no_copy_of_the_socket_and_says_when_its_timeout_is_read(tmp_path, copies):
    root = fake_proc(tmp_path, syscall=RECVFROM_ON_FD_5, fds={5: "socket:[77]"})
    notes = []
    assert reaper.blocked_call_problem(root, PID, acting=False, notes=notes) is None
    assert notes == ["its leader is blocked in recvfrom on a socket, whose timeout is read when acting"]
    assert copies == []
    assert reaper.blocked_call_problem(root, PID) is None                 # acting: a copy, where it is harmless
    assert copies == [(PID, 5, reaper.SO_RCVTIMEO)]


@pytest.fixture
def fifo(tmp_path):
    """A path that blocks whoever opens it for reading (no writer), released at the end of the test."""
    made = []

    def make(path):
        os.mkfifo(path)
        made.append(path)
        return path
    yield make
    for path in made:
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))           # lets the blocked open return
        except OSError:
            pass


def test_an_executable_that_never_answers_is_refused_in_bounded_time(tmp_path, fifo, monkeypatch):
    monkeypatch.setattr(ptrace, "READ_TIMEOUT", 0.2)
    (tmp_path / str(PID)).mkdir()
    fifo(str(tmp_path / str(PID) / "exe"))
    started = time.monotonic()
    found = reaper.executable_problem(str(tmp_path), PID)
    assert time.monotonic() - started < 2.0
    assert found == "its executable is unreadable (its executable unreadable within 0.2 s)", found


def test_code_that_never_answers_is_refused_in_bounded_time(tmp_path, fifo, monkeypatch):
    monkeypatch.setattr(ptrace, "READ_TIMEOUT", 0.2)
    root = fake_proc(tmp_path, syscall=RECVFROM_ON_FD_5, mem=None)
    fifo(str(tmp_path / str(PID) / "mem"))
    found = reaper.blocked_call_problem(root, PID)
    assert found == "its leader's code is pid %d's memory at 0x401000 unreadable within 0.2 s (a hung file " \
                    "system?)" % PID, found


def test_mappings_that_never_answer_are_refused_in_bounded_time(tmp_path, fifo, monkeypatch):
    monkeypatch.setattr(ptrace, "READ_TIMEOUT", 0.2)
    (tmp_path / str(PID)).mkdir()
    fifo(str(tmp_path / str(PID) / "maps"))
    with pytest.raises(ptrace.Unreadable) as raised:
        ptrace.find_syscall_instruction(PID, str(tmp_path))
    assert str(raised.value).endswith("pid %d's executable mappings unreadable within 0.2 s" % PID)


def test_bounded_returns_the_value_or_the_error_of_a_read_in_time():
    assert ptrace.bounded(lambda: 5, "five", 1.0) == 5
    with pytest.raises(FileNotFoundError):
        ptrace.bounded(lambda: open("/nonexistent/zc"), "nothing", 1.0)


def test_a_reading_process_that_dies_is_asked_again_then_said_with_how_it_ended(tmp_path):
    """A reading child killed by something outside its read (CI saw one end without an answer once) is asked
    once more; twice dead is an error naming the signal, never an answer."""
    marker = tmp_path / "died-once"

    def dies_the_first_time():
        if not marker.exists():
            marker.write_text("")
            os.kill(os.getpid(), signal.SIGKILL)
        return "mapped"
    assert ptrace.bounded(dies_the_first_time, "maps", 2.0) == "mapped"
    with pytest.raises(OSError) as raised:
        ptrace.bounded(lambda: os.kill(os.getpid(), signal.SIGKILL), "maps", 2.0)
    assert "ended without an answer twice (killed by signal 9)" in str(raised.value)


def test_only_resident_memory_counts_as_resident():
    import mmap
    page = mmap.mmap(-1, 2 * ptrace.PAGE_SIZE)
    address = ctypes_address(page)
    page[0] = 1                                                # first page touched, second never
    assert ptrace.resident(os.getpid(), address, 8)
    assert not ptrace.resident(os.getpid(), address + ptrace.PAGE_SIZE, 8)
    assert not ptrace.resident(os.getpid(), address + ptrace.PAGE_SIZE - 4, 8)     # spans into the second
    page.close()


def ctypes_address(buffer):
    import ctypes
    return ctypes.addressof(ctypes.c_char.from_buffer(buffer))


def test_a_v1_freezer_state_that_cannot_be_read_refuses(tmp_path):
    """A freezer hierarchy listed for the parent but not found under cgroup_root: every pause safeguard would be
    off unseen, so the parent is refused (it was taken for 'not frozen')."""
    proc = tmp_path / "proc" / "4242"
    proc.mkdir(parents=True)
    (proc / "cgroup").write_text("7:freezer:/paused-app\n3:cpu,cpuacct:/paused-app\n0::/\n")
    cgroup_root = tmp_path / "cgroup"
    problem = reaper.frozen_problem(str(tmp_path / "proc"), 4242, str(cgroup_root))
    assert problem is not None and "freezer state cannot be read" in problem
    (cgroup_root / "freezer" / "paused-app").mkdir(parents=True)
    (cgroup_root / "freezer" / "paused-app" / "freezer.state").write_text("THAWED\n")
    (cgroup_root / "freezer" / "paused-app" / "freezer.parent_freezing").write_text("0\n")
    assert reaper.frozen_problem(str(tmp_path / "proc"), 4242, str(cgroup_root)) is None
    (cgroup_root / "freezer" / "paused-app" / "freezer.state").write_text("FROZEN\n")
    assert "frozen" in reaper.frozen_problem(str(tmp_path / "proc"), 4242, str(cgroup_root))
    # The root cgroup has no freezer.state (v1 cannot freeze it): never frozen, nothing to refuse.
    (proc / "cgroup").write_text("7:freezer:/\n0::/\n")
    assert reaper.frozen_problem(str(tmp_path / "proc"), 4242, str(tmp_path / "empty")) is None
