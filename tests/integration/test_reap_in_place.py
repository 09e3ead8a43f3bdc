"""Reap in place: real parents that never reap are made to call wait4 through ptrace, without a restart."""

import json
import os
import signal
import struct
import subprocess
import sys
import time

import pytest

from ansible.module_utils.zombie_cleaner.cure import ptrace, reaper, remediate, seccomp
from ansible.module_utils.zombie_cleaner.observe import scan
from helpers import containers
from helpers import ansible_run
from helpers.ansible_run import outcomes_by_id
from helpers.parents import Parent
from helpers.shared_log import SharedLog
from helpers.zombies import start_time, wait_for, zombie_children

pytestmark = pytest.mark.skipif(not ptrace.machine_supported(), reason="reap in place is x86_64 only")


@pytest.fixture
def parent(request):
    made = []

    def make(mode, zombies, argument="3"):
        made.append(Parent(mode, zombies, argument))
        return made[-1]
    yield make
    for item in made:
        item.close()


def reap(item, **kwargs):
    return reaper.reap("/proc", item.record, item.zombies, kwargs.pop("timeout", 5.0), **kwargs)


def test_parent_blocked_in_sleep_is_reaped_and_sleeps_on_time(parent):
    sleeper = parent("sleep", 5, "3")
    started = time.monotonic()
    result = reap(sleeper)
    assert result["ok"] and result["verdict"] == "safe", result
    assert sorted(result["reaped"]) == [z["pid"] for z in sleeper.zombies]
    assert sleeper.zombie_pids() == [] and sleeper.alive()
    assert 0 < result["stop_seconds"] < 0.5
    slept = float(sleeper.finish().split()[1])
    assert 2.95 <= slept < 3.5, slept            # the interrupted sleep was restarted, not cut short or doubled
    assert time.monotonic() - started < 4


def test_busy_parent_keeps_counting_correctly(parent):
    busy = parent("busy", 3, "40000000")
    time.sleep(0.3)
    result = reap(busy)
    assert result["ok"], result
    assert busy.finish(120) == "counted 40000000 True"


def test_parent_blocked_in_read_still_gets_its_data(parent):
    reader = parent("read", 4)
    result = reap(reader)
    assert result["ok"] and reader.zombie_pids() == [], result
    reader.process.stdin.write("hello after the reap\n")
    reader.process.stdin.flush()
    assert reader.finish() == "read hello after the reap"


def test_multi_threaded_parent_including_children_of_another_thread(parent):
    threaded = parent("threads", 6, "2")
    result = reap(threaded)
    assert result["ok"] and len(result["reaped"]) == 6, result
    assert threaded.zombie_pids() == []
    assert threaded.finish() == "threads True"


def test_seccomp_filter_that_kills_on_wait4_means_skip(parent):
    guarded = parent("seccomp-kill-wait4", 3, "3")
    status = open("/proc/%d/status" % guarded.pid).read()
    assert "Seccomp:\t2" in status
    result = reap(guarded)
    assert not result["ok"] and result["verdict"] == "skipped"
    assert "seccomp filter does not allow wait4" in result["reason"] and "KILL_PROCESS" in result["reason"]
    assert guarded.alive() and len(guarded.zombie_pids()) == 3
    assert guarded.finish().startswith("slept")        # never killed: it finishes its sleep


def test_dry_run_gives_the_verdict_and_changes_nothing(parent):
    guarded = parent("seccomp-kill-wait4", 2, "2")
    plain = parent("sleep", 2, "2")
    # A dry run never attaches, so it cannot read the filter: it says when it will be judged.
    planned = reap(guarded, dry_run=True)
    assert "its seccomp filter is evaluated when acting" in planned["reason"], planned
    assert reap(guarded)["verdict"] == "skipped" and guarded.alive()          # acting, the filter refuses it
    result = reap(plain, dry_run=True)
    assert result["ok"] and result["reason"] == "would reap 2 zombies in place" and result["reaped"] == []
    assert len(plain.zombie_pids()) == 2 and len(guarded.zombie_pids()) == 2


HOLD_TRACE = r'''
import ctypes, sys, time
libc = ctypes.CDLL(None, use_errno=True)
libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p]
assert libc.ptrace(0x4206, int(sys.argv[1]), None, None) == 0, ctypes.get_errno()
print("holding", flush=True)
time.sleep(30)
'''


def test_parent_already_traced_is_skipped(parent):
    traced = parent("sleep", 2, "5")
    holder = subprocess.Popen([sys.executable, "-c", HOLD_TRACE, str(traced.pid)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "holding"
        result = reap(traced)
        assert result["verdict"] == "skipped" and "already traced by pid %d" % holder.pid in result["reason"]
        assert len(traced.zombie_pids()) == 2
    finally:
        holder.kill()
        holder.communicate()


# steps: the error on the second wait4's step, one zombie reaped. loop: on the second call, the mprotect of the
# loop's page, none reaped; the page is unmapped by a third call all the same.
@pytest.mark.parametrize("way, loop_min, reaped", [("steps", 100, 1), ("loop", 3, 0)])
def test_a_forced_error_mid_rung_leaves_the_parent_exactly_as_it_was(parent, monkeypatch, way, loop_min, reaped,
                                                                     tmp_path):
    monkeypatch.setattr(reaper, "LOOP_MIN_ZOMBIES", loop_min)
    busy = parent("busy", 4, "30000000")
    time.sleep(0.2)
    real_syscall = ptrace.Tracee.syscall
    calls = SharedLog(str(tmp_path))                  # appended to by the tracer process

    def fail_on_second(self, saved, address, number, args):
        calls.append(args[0])
        if len(calls) == 2:
            # Scribble over the tracee's registers as a half-done injection would, then fail.
            scribbled = saved.copy()
            scribbled.rip, scribbled.rsp, scribbled.rax = address, 8, 12345
            self.set_registers(scribbled)
            raise ptrace.PtraceError("forced failure", 5)
        return real_syscall(self, saved, address, number, args)
    monkeypatch.setattr(ptrace.Tracee, "syscall", fail_on_second)
    result = reap(busy)
    assert result["verdict"] == "failed" and "forced failure" in result["reason"]
    assert len(result["reaped"]) == reaped and len(busy.zombie_pids()) == 4 - reaped
    assert result["page_left"] is None and len(calls) == (2 if way == "steps" else 3), (result, calls)
    assert busy.finish(120) == "counted 30000000 True"    # registers restored: it counts on, correctly


def test_parent_exiting_during_the_injection_is_reported_not_raised(parent, monkeypatch):
    sleeper = parent("sleep", 3, "5")
    real_syscall = ptrace.Tracee.syscall

    def kill_first(self, saved, address, number, args):
        sleeper.process.send_signal(signal.SIGKILL)
        return real_syscall(self, saved, address, number, args)
    monkeypatch.setattr(ptrace.Tracee, "syscall", kill_first)
    result = reap(sleeper)
    assert result["verdict"] == "failed" and not result["ok"]
    assert result["reason"] == "the parent ended during the injection", result
    # This test is both the parent's parent and (through reaper) its tracer: the tracer collected the
    # exit, so all that is left to check is that nothing of it remains, not even a zombie.
    sleeper.process.wait(5)
    assert not os.path.exists("/proc/%d" % sleeper.pid)


def test_pid_1_of_a_containerd_container_is_reaped_without_a_restart(runtimes, tmp_path, cleanup):
    box = containers.CtrContainer(zombies=3, extra=["--seccomp"])
    cleanup(box)
    init = (box.init_pid, start_time(box.init_pid))
    assert "Seccomp:\t2" in open("/proc/%d/status" % box.init_pid).read()   # containerd's default profile
    record = {c["container_id"]: c for c in scan.run_scan(scan.ScanOptions(
        state_path=str(tmp_path / "state.json"), confirm_count=1))["containers"]}[box.id]
    outcome = remediate.run_remediation(remediate.RemediationOptions(state_path=str(tmp_path / "state.json")),
                                        [record])["outcomes"][0]
    assert outcome["result"] == "reaped_in_place" and outcome["rung"] == "reap_in_place", outcome
    verdict = outcome["rungs"][0]["parents"][0]
    assert verdict["seccomp"] and all(name == "ALLOW" for name in verdict["seccomp"])
    assert zombie_children(box.init_pid) == [] and (box.init_pid, start_time(box.init_pid)) == init


def test_the_evaluator_agrees_with_a_real_default_profile(runtimes, cleanup):
    # containerd's default profile, as the kernel holds it: wait4 allowed, mount/kexec_load/reboot refused.
    box = containers.CtrContainer(zombies=1, extra=["--seccomp"])
    cleanup(box)
    with ptrace.Tracee(box.init_pid, time.monotonic() + 5) as tracee:
        tracee.interrupt()
        programs = [seccomp.parse(b"".join(struct.pack("<HBBI", *item) for item in program))
                    for program in tracee.seccomp_filters()]
    assert programs and len(programs[0]) > 50
    def action(nr, arch=seccomp.AUDIT_ARCH_X86_64):
        return seccomp.verdict(programs, seccomp.seccomp_data(nr, arch, 0x1000, [0] * 6))
    assert action(61) == (True, ["ALLOW"])                           # wait4
    for refused in (165, 246, 169):                                   # mount, kexec_load, reboot
        allowed, names = action(refused)
        assert not allowed and names[0] in ("ERRNO", "KILL_PROCESS", "KILL_THREAD"), (refused, names)
    assert action(61, arch=0x12345678)[0] is False                    # an architecture the profile does not know


def site(tmp_path, *extra):
    """One site.yml run that confirms on first sight: {container_id: outcome}."""
    _, results = ansible_run.site(tmp_path, "-e", "zombie_cleaner_confirm_count=1",
                                  "-e", "zombie_cleaner_container_timeout=5s", *extra)
    return outcomes_by_id(results)


def test_seeds_pids_exhaustion_cured_without_a_restart(runtimes, tmp_path, cleanup):
    box = containers.pids_exhausted_docker_container()
    cleanup(box)
    init = (box.init_pid, start_time(box.init_pid))
    outcome = site(tmp_path)[box.id]
    assert outcome["result"] == "reaped_in_place" and outcome["zombies_after"] == 0, outcome
    assert outcome["stop_seconds"] < 0.5
    assert (box.inspect()["State"]["Pid"], start_time(box.init_pid)) == init          # not restarted
    assert box.inspect()["RestartCount"] == 0 and zombie_children(box.init_pid) == []
    fork = box.exec("/bin/sh", "-c", "/bin/sleep 0 & wait")
    assert fork.returncode == 0, fork.stderr                                          # forks work again
    state = json.loads((tmp_path / "state" / "state.json").read_text())
    assert state["counters"]["containers_reaped_in_place_total"] == 1
    assert state["counters"]["zombies_reaped_in_place_total"] == 5
    prom = (tmp_path / "zombie_cleaner.prom").read_text()
    assert "zombie_cleaner_containers_reaped_in_place_total 1\n" in prom


def test_container_whose_seccomp_kills_wait4_goes_to_the_restart_rung(runtimes, tmp_path, cleanup):
    box = containers.DockerContainer(command=containers.NO_WAIT_ZOMBIES_COMMAND, extra=[
        "--security-opt", "seccomp=%s" % containers.no_wait4_seccomp_profile(tmp_path)])
    cleanup(box)
    wait_for(lambda: len(zombie_children(box.init_pid)) == 3, "3 zombies under PID 1")
    old_init = box.init_pid
    outcome = site(tmp_path)[box.id]
    reap_step = outcome["rungs"][0]
    assert reap_step["rung"] == "reap_in_place" and not reap_step["ok"]
    assert "KILL_PROCESS" in reap_step["detail"]
    assert outcome["result"] == "cured" and outcome["rung"] == "restart", outcome
    assert box.inspect()["State"]["Pid"] != old_init


def test_check_mode_names_the_reap_rung_with_its_verdict(runtimes, tmp_path, cleanup):
    box = containers.DockerContainer(zombies=2)
    cleanup(box)
    init = (box.init_pid, start_time(box.init_pid))
    outcome = site(tmp_path, "--check")[box.id]
    assert outcome["result"] == "would_remediate"
    first = outcome["plan"][0]
    assert first["rung"] == "reap_in_place" and first["safe"] is True
    # Check mode never stops the parent, so the container's seccomp filter is judged only when acting.
    assert "would reap 2 zombies in place" in first["action"]
    assert "seccomp filter is evaluated when acting" in first["action"]
    assert len(zombie_children(box.init_pid)) == 2 and (box.init_pid, start_time(box.init_pid)) == init
    exec_ok = box.exec("/bin/true")
    assert exec_ok.returncode == 0


def test_host_zombies_are_reaped_in_place_only_when_allowed(parent, tmp_path):
    host_parent = parent("sleep", 3, "3")
    options = scan.ScanOptions(state_path=str(tmp_path / "state.json"), confirm_count=1)
    groups = [group for group in scan.run_scan(options)["host_groups"] if group["parent"]["pid"] == host_parent.pid]
    assert len(groups) == 1 and groups[0]["confirmed"]
    state_path = str(tmp_path / "state.json")
    off = remediate.run_remediation(remediate.RemediationOptions(state_path=state_path), [], host_groups=groups)
    assert off["outcomes"] == [] and len(host_parent.zombie_pids()) == 3          # default: off
    on = remediate.run_remediation(remediate.RemediationOptions(state_path=state_path, reap_host_zombies=True), [],
                                   host_groups=groups)
    outcome = on["outcomes"][0]
    assert outcome["result"] == "reaped_in_place" and outcome["zombies_after"] == 0, outcome
    assert host_parent.zombie_pids() == [] and host_parent.finish().startswith("slept")


def test_a_refused_attach_is_a_skip_not_a_failure(parent, monkeypatch):
    sleeper = parent("sleep", 2, "2")
    real = ptrace._ptrace

    def refuse_seize(request, pid, addr, data, what):
        if request == ptrace.PTRACE_SEIZE:
            raise ptrace.PtraceError(what, 1)       # EPERM, as under Yama ptrace_scope=3
        return real(request, pid, addr, data, what)
    monkeypatch.setattr(ptrace, "_ptrace", refuse_seize)
    result = reap(sleeper)
    assert result["verdict"] == "skipped" and result["reason"].startswith("cannot attach: PTRACE_SEIZE")
    assert len(sleeper.zombie_pids()) == 2 and result["stop_seconds"] is None


def test_only_the_zombies_seen_are_reaped_a_newer_child_keeps_its_exit_status(parent):
    sleeper = parent("sleep", 3, "2")
    # The child left out is the oldest: the kernel's wait4(-1) would take it first.
    seen, newer = sleeper.zombies[1:], sleeper.zombies[0]
    result = reaper.reap("/proc", sleeper.record, seen, 5.0)
    assert result["ok"] and sorted(result["reaped"]) == sorted(z["pid"] for z in seen), result
    assert sleeper.zombie_pids() == [newer["pid"]]      # wait4(-1) would have taken this one too
