"""Signals reach only the exact process seen: real processes, reused PIDs refused."""

import signal
import subprocess
import sys

import pytest

from ansible.module_utils.zombie_cleaner.cure import procsignal
from helpers.zombies import start_time


@pytest.fixture
def sleeper():
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield process
    if process.poll() is None:
        process.kill()
    process.wait()


def test_exact_process_is_signalled(sleeper):
    how = procsignal.send_exact("/proc", sleeper.pid, start_time(sleeper.pid), signal.SIGKILL)
    assert how in ("pidfd", "kill")
    assert sleeper.wait(10) == -signal.SIGKILL


def test_wrong_start_time_means_a_reused_pid_and_is_refused(sleeper):
    with pytest.raises(procsignal.Refused, match="no longer the process seen"):
        procsignal.send_exact("/proc", sleeper.pid, start_time(sleeper.pid) - 1, signal.SIGKILL)
    assert sleeper.poll() is None


@pytest.mark.parametrize("pid", [0, 1])
def test_pid_1_and_0_are_never_signalled(pid):
    with pytest.raises(procsignal.Refused, match="refusing to signal pid %d" % pid):
        procsignal.send_exact("/proc", pid, 0, signal.SIGKILL)


def test_gone_process_is_refused(sleeper):
    seen = start_time(sleeper.pid)
    sleeper.kill()
    sleeper.wait()
    with pytest.raises(procsignal.Refused):
        procsignal.send_exact("/proc", sleeper.pid, seen, signal.SIGKILL)


def test_a_fixture_proc_tree_never_leads_to_a_real_signal(sleeper, tmp_path):
    # A copy of the sleeper's stat under a fake root: same pid, same start time, but not the live /proc.
    fake = tmp_path / "proc" / str(sleeper.pid)
    fake.mkdir(parents=True)
    fake.joinpath("stat").write_text(open("/proc/%d/stat" % sleeper.pid).read())
    with pytest.raises(procsignal.Refused, match="not this system's live /proc"):
        procsignal.send_exact(str(tmp_path / "proc"), sleeper.pid, start_time(sleeper.pid), signal.SIGKILL)
    assert sleeper.poll() is None
