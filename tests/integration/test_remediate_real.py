"""The remediation ladder on real containers: the seed's failure reproduced and cured."""

import json
import os
import time

from helpers import containers
from helpers import ansible_run
from helpers.ansible_run import outcomes_by_id
from helpers.zombies import start_time, wait_for, wait_for_zombies, zombie_children


# These tests are about the restart rungs; reaping in place has its own tests.
RESTART_RUNGS = ["-e", "zombie_cleaner_reap_in_place=false", "-e", "zombie_cleaner_container_timeout=9s"]


def site(tmp_path, *extra, **options):
    return ansible_run.site(tmp_path, *RESTART_RUNGS, *extra, **options)


def test_docker_pids_limit_exhausted_then_cured_by_restart(runtimes, tmp_path, cleanup):
    box = containers.pids_exhausted_docker_container()
    cleanup(box)
    zombies = 5
    old_init = (box.init_pid, start_time(box.init_pid))

    for run in range(2):
        site(tmp_path)
        assert (box.init_pid, start_time(box.init_pid)) == old_init, "restarted before confirmation"
    _, results = site(tmp_path)
    outcome = outcomes_by_id(results)[box.id]
    assert outcome["result"] == "cured" and outcome["rung"] == "restart", outcome
    assert outcome["zombies_before"] == zombies and outcome["zombies_after"] == 0
    new_pid = box.inspect()["State"]["Pid"]
    assert new_pid != old_init[0] and zombie_children(new_pid) == []
    fork = box.exec("/bin/sh", "-c", "/bin/sleep 0 & wait")
    assert fork.returncode == 0, fork.stderr   # forks work again
    state = json.loads((tmp_path / "state" / "state.json").read_text())
    assert box.id not in state["containers"]                      # success resets the count
    assert state["counters"]["containers_cleaned_total"] == 1
    lines = [json.loads(line) for line in (tmp_path / "log" / "audit.log").read_text().splitlines()]
    cured = [line for line in lines if line["container_id"] == box.id and line.get("result") == "cured"]
    assert len(cured) == 1
    for field in ("time", "level", "msg", "component", "container_id", "pod_name", "namespace", "zombie_pid",
                  "zombie_ppid", "zombie_cmdline"):
        assert field in cured[0]
    assert cured[0]["zombie_ppid"] == old_init[0] and cured[0]["zombie_cmdline"] in ("sh", "sleep")


def test_containerd_task_ignoring_sigterm_escalates_to_kill_init_and_comes_back(runtimes, tmp_path, cleanup):
    marker = "/tmp/filled-%d" % os.getpid()
    box = containers.CtrContainer(command=containers.fill_pids_once_command(3, marker))
    cleanup(box)
    cleanup(type("Marker", (), {"remove": lambda self: os.path.exists(containers.ROOTFS + marker)
                                and os.unlink(containers.ROOTFS + marker)})())
    # busybox sh sometimes reaps a background child before it execs: 2 to 4 zombies.
    wait_for_zombies(box.init_pid, 2, "containerd task", at_least=True)
    old_pid = box.init_pid
    started = time.monotonic()
    for _ in range(3):
        _, results = site(tmp_path, "-e", "zombie_cleaner_container_timeout=3s")
    elapsed = time.monotonic() - started
    outcome = outcomes_by_id(results)[box.id]
    # sleep as PID 1 ignores SIGTERM: the graceful rung times out, SIGKILL of the init cures it.
    assert outcome["rungs"][0]["rung"] == "restart" and outcome["rungs"][0]["ok"] is False
    assert outcome["rung"] == "kill_init" and outcome["result"] == "cured", outcome
    assert outcome["timeouts"] >= 1
    assert outcome["rungs"][-1]["rung"] == "start_again" and outcome["rungs"][-1]["ok"]
    new_pid = box._task_pid()
    assert new_pid != old_pid and zombie_children(new_pid) == []
    assert elapsed < 120


def test_whitelisted_confirmed_container_is_untouched(runtimes, tmp_path, cleanup):
    box = containers.DockerContainer(zombies=2, labels={"io.kubernetes.pod.name": "agent",
                                                        "io.kubernetes.pod.namespace": "logging"})
    cleanup(box)
    before = (box.init_pid, start_time(box.init_pid))
    for _ in range(4):
        _, results = site(tmp_path)
    assert box.id not in outcomes_by_id(results)
    assert (box.inspect()["State"]["Pid"], start_time(box.init_pid)) == before
    assert zombie_children(box.init_pid) == box.zombies


def test_dry_run_and_check_mode_touch_nothing_and_name_the_actions(runtimes, tmp_path, cleanup):
    box = containers.DockerContainer(zombies=2)
    cleanup(box)
    before = (box.init_pid, start_time(box.init_pid))
    for _ in range(3):
        _, results = site(tmp_path, env={"DRY_RUN": "true"})
    outcome = outcomes_by_id(results)[box.id]
    assert outcome["result"] == "would_remediate"
    assert [step["rung"] for step in outcome["plan"]] == ["restart", "kill_init", "kill_shim"]
    assert "via docker" in outcome["plan"][0]["action"]
    state_before = (tmp_path / "state" / "state.json").read_bytes()
    result, results = site(tmp_path, "--check")
    assert outcomes_by_id(results)[box.id]["result"] == "would_remediate"
    report = json.loads((results / "localhost.remediation.json").read_text())["report"]
    assert any("would graceful restart through the runtime via docker -> SIGKILL" in line for line in report)
    assert "would_remediate" in result.stdout
    assert (tmp_path / "state" / "state.json").read_bytes() == state_before
    assert (box.inspect()["State"]["Pid"], start_time(box.init_pid)) == before
    assert zombie_children(box.init_pid) == box.zombies


def test_hung_runtime_cli_is_bounded_counted_and_escalated(runtimes, tmp_path, cleanup):
    hung = tmp_path / "docker-hangs"
    hung.write_text("#!/bin/sh\nexec sleep 600\n")
    hung.chmod(0o755)
    box = containers.DockerContainer(zombies=2)
    cleanup(box)
    for _ in range(2):
        site(tmp_path, "-e", "zombie_cleaner_docker_bin=%s" % hung)
    started = time.monotonic()
    result, results = site(tmp_path, "-e", "zombie_cleaner_docker_bin=%s" % hung,
                           "-e", "zombie_cleaner_container_timeout=2s", check=False)
    elapsed = time.monotonic() - started
    outcome = outcomes_by_id(results)[box.id]
    assert outcome["rungs"][0]["rung"] == "restart" and "timed out" in outcome["rungs"][0]["detail"]
    assert outcome["rung"] == "kill_init" and outcome["zombies_after"] == 0
    # docker start hangs too: the container is left stopped, and that is a counted failure.
    assert outcome["result"] == "failed" and outcome["timeouts"] >= 2
    assert result.returncode != 0
    state = json.loads((tmp_path / "state" / "state.json").read_text())
    assert state["counters"]["cleanup_failures_total"] == 1
    assert state["counters"]["container_operation_timeouts_total"] >= 2
    assert elapsed < 60   # 2s per rung plus Ansible's own start-up
    assert not [p for p in os.listdir("/proc") if p.isdigit() and _cmdline(p).startswith("sleep600")]


def _cmdline(pid):
    try:
        with open("/proc/%s/cmdline" % pid, "rb") as handle:
            return handle.read().replace(b"\0", b"").decode()
    except OSError:
        return ""


def test_restarted_between_scan_and_remediation_is_stale_and_untouched(runtimes, tmp_path, cleanup):
    from ansible.module_utils.zombie_cleaner.cure import remediate
    from ansible.module_utils.zombie_cleaner.observe import scan
    from ansible.module_utils.zombie_cleaner.record import audit
    box = containers.DockerContainer(zombies=2)
    cleanup(box)
    options = scan.ScanOptions(state_path=str(tmp_path / "state.json"), confirm_count=1)
    record = {c["container_id"]: c for c in scan.run_scan(options)["containers"]}[box.id]
    assert record["candidate"]
    containers.run([containers.DOCKER, "restart", "-t", "0", box.id])
    new_init = box.inspect()["State"]["Pid"]
    result = remediate.run_remediation(remediate.RemediationOptions(
        state_path=str(tmp_path / "state.json"), audit_log=audit.AuditLog(str(tmp_path / "audit.log"))), [record])
    outcome = result["outcomes"][0]
    assert outcome["result"] == "stale" and "no longer the process seen" in outcome["reason"]
    assert box.inspect()["State"]["Pid"] == new_init and outcome["rungs"] == []


def test_a_host_process_named_like_a_shim_is_never_signalled(tmp_path, cleanup):
    import shutil
    import subprocess
    import sys
    from ansible.module_utils.zombie_cleaner.cure import remediate
    from ansible.module_utils.zombie_cleaner.observe import scan
    from ansible.module_utils.zombie_cleaner.record import audit
    impostor = tmp_path / "containerd-shim"
    shutil.copy(sys.executable, impostor)
    process = subprocess.Popen([str(impostor), "-c", "import os, time\nfor _ in range(2):\n    os.fork() or os._exit(0)\n"
                                "time.sleep(60)"])
    cleanup(type("Stop", (), {"remove": lambda self: (process.kill(), process.wait())})())
    wait_for(lambda: len(zombie_children(process.pid)) == 2, "impostor's zombies")
    result = scan.run_scan(scan.ScanOptions(state_path=str(tmp_path / "state.json"), confirm_count=1))
    assert all(c["shim"]["pid"] != process.pid for c in result["containers"])
    group = next(g for g in result["host_groups"] if g["parent"]["pid"] == process.pid)
    assert group["parent"]["name"] == "containerd-shim" and group["candidate"] is False
    # A forged record that points at it is refused too.
    forged = {"container_id": "forged", "confirmed": True, "protected": False, "parent_classes": ["application"],
              "runtime": "docker", "zombies": group["zombies"],
              "shim": {"pid": process.pid, "start_time": start_time(process.pid), "binary": "containerd-shim", "id": "x"},
              "init": None}
    options = remediate.RemediationOptions(state_path=str(tmp_path / "state.json"),
                                           audit_log=audit.AuditLog(str(tmp_path / "audit.log")))
    outcome = remediate.run_remediation(options, [forged])["outcomes"][0]
    assert outcome["result"] == "skipped" and outcome["reason"].startswith("identity unverified")
    # Even a record that claims a bundle-verified identity is checked again against /proc.
    outcome = remediate.run_remediation(options, [dict(forged, id_source="bundle")])["outcomes"][0]
    assert outcome["result"] == "stale" and outcome["reason"] == "pid %d is not a container shim" % process.pid
    assert process.poll() is None


def test_podman_container_cured_by_restart(podman, tmp_path, cleanup):
    box = containers.PodmanContainer(command=containers.fill_pids_once_command(3, "/tmp/filled"))
    cleanup(box)
    # busybox sh sometimes reaps a background child before it execs: 2 to 4 zombies.
    wait_for_zombies(box.init_pid, 2, "podman container", at_least=True)
    for _ in range(3):
        _, results = site(tmp_path)
    outcome = outcomes_by_id(results)[box.id]
    assert outcome["result"] == "cured" and outcome["rung"] == "restart", outcome
    assert outcome["runtime"] == "podman" and outcome["zombies_after"] == 0
    new_pid = box.pid()
    assert new_pid != box.init_pid and zombie_children(new_pid) == []
