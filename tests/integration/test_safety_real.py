"""No wrong kill (issue 13): what a workload controls is evidence, never proof. Real processes and containers."""

import fcntl
import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from ansible.module_utils.zombie_cleaner.cure import remediate
from ansible.module_utils.zombie_cleaner.observe import procfs, scan, trust
from ansible.module_utils.zombie_cleaner.record import audit, state
from helpers import containers
from helpers.parents import Parent
from helpers.zombies import start_time, wait_for, zombie_children

NOBODY = 65534
SYSTEM_PYTHON = "/usr/bin/python3"     # readable by nobody (the venv's may sit under /root)


def scan_once(tmp_path, **options):
    return scan.run_scan(scan.ScanOptions(state_path=str(tmp_path / "state.json"), confirm_count=1, **options))


def remediation_options(tmp_path, **overrides):
    return remediate.RemediationOptions(state_path=str(tmp_path / "state.json"),
                                        audit_log=audit.AuditLog(str(tmp_path / "audit.log")), **overrides)


class Process:
    """A background process ended with its whole process group at cleanup."""

    def __init__(self, argv, **kwargs):
        self.process = subprocess.Popen(argv, start_new_session=True, stdout=subprocess.PIPE, text=True, **kwargs)
        self.pid = self.process.pid

    def remove(self):
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(10)
        self.process.stdout.close()


IMPOSTOR = textwrap.dedent("""
    import ctypes, os, sys, time
    # comm "containerd-shim", argv[0] containerd-shim-runc-v2 with a victim's id: what a real shim shows.
    ctypes.CDLL(None).prctl(15, b"containerd-shim", 0, 0, 0)
    child = os.fork()
    if child == 0:
        for _ in range(2):
            if os.fork() == 0:
                os._exit(0)
        print(os.getpid(), flush=True)
        time.sleep(600)
        os._exit(0)
    time.sleep(600)
""")


def test_impostor_shim_run_as_nobody_cannot_get_a_real_docker_container_restarted(runtimes, tmp_path, cleanup):
    victim = containers.DockerContainer(command=["/bin/sleep", "100000"])
    cleanup(victim)
    started_at = victim.inspect()["State"]["StartedAt"]
    impostor = Process(["setpriv", "--reuid=%d" % NOBODY, "--regid=%d" % NOBODY, "--clear-groups", "bash", "-c",
                        'exec -a containerd-shim-runc-v2 %s -c "$0" -namespace moby -id %s -address '
                        "/run/containerd/containerd.sock" % (SYSTEM_PYTHON, victim.id), IMPOSTOR], cwd="/")
    cleanup(impostor)
    holder = int(impostor.process.stdout.readline())
    wait_for(lambda: len(zombie_children(holder)) == 2, "the impostor's zombies")

    result = scan_once(tmp_path)
    assert all(c["container_id"] != victim.id for c in result["containers"])
    group = next(g for g in result["host_groups"] if g["parent"]["pid"] == holder)
    assert group["unverified_identity"]["container_id"] == victim.id
    assert "runs as uid %d, not root" % NOBODY in group["unverified_identity"]["reason"]
    assert any("claims container %s" % victim.id[:12] in line for line in result["report"])
    outcome = remediate.run_remediation(remediation_options(tmp_path), result["to_cure"]["containers"],
                                        host_groups=result["to_cure"]["host_groups"])
    assert all(o["container_id"] != victim.id for o in outcome["outcomes"])
    assert victim.inspect()["State"]["StartedAt"] == started_at and victim.inspect()["State"]["Pid"] == victim.init_pid
    assert len(zombie_children(holder)) == 2               # host zombies: not reaped without reap_host_zombies


PTHREAD_EXIT_LEADER = r"""
#include <pthread.h>
#include <unistd.h>
static void *work(void *arg) { (void)arg; for (;;) pause(); return 0; }
int main(void) {
    pthread_t thread;
    pthread_create(&thread, 0, work, 0);
    pthread_exit(0);      /* the leader goes, the process lives on: /proc/PID/stat reads Z */
}
"""


def test_a_thread_group_leader_that_called_pthread_exit_is_not_a_zombie(tmp_path, cleanup):
    source = tmp_path / "leader.c"
    source.write_text(PTHREAD_EXIT_LEADER)
    subprocess.run(["gcc", "-pthread", "-o", str(tmp_path / "leader"), str(source)], check=True)
    leader = Process([str(tmp_path / "leader")])
    cleanup(leader)
    wait_for(lambda: procfs.read_stat("/proc", leader.pid).state == "Z", "the leader to exit its thread")
    assert procfs.read_stat("/proc", leader.pid).num_threads == 2
    result = scan_once(tmp_path)
    seen = [z["pid"] for g in result["host_groups"] for z in g["zombies"]]
    seen += [z["pid"] for c in result["containers"] for z in c["zombies"]]
    assert leader.pid not in seen
    assert procfs.alive_zombies("/proc", [{"pid": leader.pid, "start_time": start_time(leader.pid)}]) == []


def docker_stand_in(tmp_path, restart_script):
    """A docker CLI stand-in: `restart` runs restart_script, anything else the real docker."""
    stand_in = tmp_path / "docker"
    stand_in.write_text('#!/bin/sh\nif [ "$1" = restart ]; then %s; fi\nexec %s "$@"\n' % (restart_script,
                                                                                           containers.DOCKER))
    stand_in.chmod(0o755)
    return str(stand_in)


def test_runtime_cli_that_did_the_job_but_exited_1_is_a_cure_not_an_escalation(runtimes, tmp_path, cleanup):
    box = containers.DockerContainer(zombies=2)
    cleanup(box)
    # Restarts the container for real, then complains; every other command is docker's own.
    stand_in = docker_stand_in(tmp_path, "%s \"$@\"; echo 'Error response from daemon: something odd' >&2; exit 1"
                               % containers.DOCKER)
    record = next(c for c in scan_once(tmp_path)["to_cure"]["containers"] if c["container_id"] == box.id)
    result = remediate.run_remediation(remediation_options(tmp_path, reap_in_place=False,
                                                           binaries={"docker": stand_in}), [record])
    outcome = result["outcomes"][0]
    assert outcome["result"] == "cured" and outcome["rung"] == "restart", json.dumps(outcome, indent=1)
    assert "exited 1" in outcome["complaint"]
    assert [step["rung"] for step in outcome["rungs"]] == ["restart"]     # no kill_init, no kill_shim after it
    assert outcome["zombies_after"] == 0 and box.inspect()["State"]["Running"] is True
    assert result["summary"]["failed"] == 0
    # An audit line right before the action and one right after it, then the outcome.
    logged = [json.loads(line) for line in (tmp_path / "audit.log").read_text().splitlines()]
    assert [(e["action"], e.get("phase")) for e in logged if e["container_id"] == box.id] == [
        ("remediate_step", "start"), ("remediate_step", "end"), ("remediate", None)]


def test_init_stuck_in_uninterruptible_sleep_is_reported_not_escalated_to_the_shim(runtimes, tmp_path, cleanup):
    box = containers.DockerContainer(zombies=2)
    cleanup(box)
    record = next(c for c in scan_once(tmp_path)["to_cure"]["containers"] if c["container_id"] == box.id)
    # A frozen (docker pause) init cannot die: SIGKILL leaves it in D, like a task stuck on storage.
    containers.run([containers.DOCKER, "pause", box.id])
    try:
        # The runtime cannot help either (a broken daemon): the ladder goes on to SIGKILL of the init.
        broken = docker_stand_in(tmp_path, "echo 'Error response from daemon: broken' >&2; exit 1")
        result = remediate.run_remediation(remediation_options(tmp_path, container_timeout="2s",
                                                               binaries={"docker": broken}), [record])
        outcome = result["outcomes"][0]
        assert outcome["result"] == "failed" and "uninterruptible sleep (D)" in outcome["reason"], json.dumps(outcome, indent=1)
        assert "kill_shim" not in [step["rung"] for step in outcome["rungs"]]
        assert procfs.read_stat("/proc", record["shim"]["pid"]).start_time == record["shim"]["start_time"]
    finally:
        containers.run([containers.DOCKER, "unpause", box.id], check=False)


def test_a_run_that_cannot_take_the_lock_acts_on_nothing(tmp_path, cleanup):
    holder = Parent("sleep", 2, "60")
    cleanup(type("Close", (), {"remove": lambda self: holder.close()})())
    group = next(g for g in scan_once(tmp_path, reap_host_zombies=True)["to_cure"]["host_groups"]
                 if g["parent"]["pid"] == holder.pid)
    state.prepare_directory(str(tmp_path / "state.json"))
    with open(str(tmp_path / "state.json.lock"), "a") as other_run:
        fcntl.flock(other_run, fcntl.LOCK_EX)              # another run holds the node's state
        with pytest.raises(state.LockBusy):
            remediate.run_remediation(remediation_options(tmp_path, reap_host_zombies=True, process_timeout="1s"),
                                      [], host_groups=[group])
    assert holder.zombie_pids() == sorted(z["pid"] for z in holder.zombies)   # nobody reaped them
    assert not (tmp_path / "audit.log").exists() or "remediat" not in (tmp_path / "audit.log").read_text()


NON_UTF8_MAPPING = textwrap.dedent("""
    import mmap, os, sys, time
    path = os.fsencode(sys.argv[1]) + b"/lib-\\xff\\xfe.so"
    with open(path, "wb") as handle:
        handle.write(b"\\0" * 4096)
    fd = os.open(path, os.O_RDONLY)
    mapping = mmap.mmap(fd, 4096, prot=mmap.PROT_READ | mmap.PROT_EXEC)
    for _ in range(2):
        if os.fork() == 0:
            os._exit(0)
    print("ready", flush=True)
    time.sleep(600)
""")


def test_one_remediations_surprise_is_its_own_outcome_and_everything_is_recorded(tmp_path, cleanup):
    odd = Process([sys.executable, "-c", NON_UTF8_MAPPING, str(tmp_path)])
    cleanup(odd)
    assert odd.process.stdout.readline().strip() == "ready"
    plain = Parent("sleep", 2, "60")
    cleanup(type("Close", (), {"remove": lambda self: plain.close()})())
    wait_for(lambda: len(zombie_children(odd.pid)) == 2, "the odd parent's zombies")
    groups = [g for g in scan_once(tmp_path, reap_host_zombies=True)["to_cure"]["host_groups"]
              if g["parent"]["pid"] in (odd.pid, plain.pid)]
    assert len(groups) == 2
    result = remediate.run_remediation(remediation_options(tmp_path, reap_host_zombies=True), [],
                                       host_groups=groups)
    by_parent = {o["parents"][0]["pid"]: o for o in result["outcomes"]}
    assert by_parent[plain.pid]["result"] == "reaped_in_place"
    assert by_parent[odd.pid]["result"] in ("reaped_in_place", "failed", "skipped")
    assert by_parent[odd.pid]["reason"]
    logged = [json.loads(line) for line in (tmp_path / "audit.log").read_text().splitlines()]
    finished = {entry["container_id"] for entry in logged if entry.get("action") == "remediate"}
    assert finished == {g["key"] for g in groups}
    counters = json.loads((tmp_path / "state.json").read_text())["counters"]
    assert counters["containers_reaped_in_place_total"] >= 1


POD_UID = "3f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"


def cri_pod(cleanup, app_zombies=2, sidecar_name="sidecar", namespace="shop"):
    """A CRI-style pod under containerd's k8s.io namespace: a sandbox and two containers in its one shim."""
    sandbox_id = "zc-sandbox-" + os.urandom(4).hex()

    def annotations(kind, name=None):
        found = {"io.kubernetes.cri.container-type": kind, "io.kubernetes.cri.sandbox-id": sandbox_id,
                 "io.kubernetes.cri.sandbox-name": "web-1", "io.kubernetes.cri.sandbox-namespace": namespace,
                 "io.kubernetes.cri.sandbox-uid": POD_UID}
        if name:
            found["io.kubernetes.cri.container-name"] = name
        return found
    sandbox = containers.CtrContainer(name=sandbox_id, command=["/bin/sleep", "100000"],
                                      annotations=annotations("sandbox"), namespace=containers.CRI_NAMESPACE)
    cleanup(sandbox)
    app = containers.CtrContainer(zombies=app_zombies, annotations=annotations("container", "app"),
                                  namespace=containers.CRI_NAMESPACE)
    cleanup(app)
    sidecar = containers.CtrContainer(command=["/bin/sleep", "100000"], namespace=containers.CRI_NAMESPACE,
                                      annotations=annotations("container", sidecar_name))
    cleanup(sidecar)
    return sandbox, app, sidecar


def shim_of(pid):
    return procfs.read_stat("/proc", pid).ppid


def test_a_pods_shim_is_never_planned_while_a_sibling_container_is_protected(runtimes, tmp_path, cleanup):
    sandbox, app, sidecar = cri_pod(cleanup)
    assert shim_of(app.init_pid) == shim_of(sidecar.init_pid) == shim_of(sandbox.init_pid)
    protect_sidecar = ["^shop/web-1/sidecar$"]
    record = next(c for c in scan_once(tmp_path, whitelist_patterns=protect_sidecar)["containers"]
                  if c["container_id"] == app.id)
    assert record["shim_shared"] is True and record["protected"] is False
    for options in ({}, {"allow_pod_shim_kill": True}):
        plan = remediate.run_remediation(remediation_options(tmp_path, dry_run=True, **options), [record])
        rungs = [step["rung"] for step in plan["outcomes"][0]["plan"]]
        assert rungs == ["reap_in_place", "restart", "kill_init"], (options, rungs)
    assert record["protected_members"] == ["shop/web-1/sidecar"]
    # With the sibling unprotected and the opt-in given, the shim rung is planned: the test can fail.
    record = next(c for c in scan_once(tmp_path, whitelist_patterns=[])["containers"] if c["container_id"] == app.id)
    plan = remediate.run_remediation(remediation_options(tmp_path, dry_run=True, allow_pod_shim_kill=True), [record])
    assert [step["rung"] for step in plan["outcomes"][0]["plan"]][-1] == "kill_shim"


def test_kubernetes_container_without_readable_pod_is_protected_and_never_restarted_by_ctr(runtimes, tmp_path,
                                                                                           cleanup):
    bare = containers.CtrContainer(zombies=2, namespace=containers.CRI_NAMESPACE)   # k8s.io, no pod annotations
    cleanup(bare)
    record = next(c for c in scan_once(tmp_path)["containers"] if c["container_id"] == bare.id)
    assert record["protected"] is True and record["decision"].startswith("identity unknown")
    assert record["id_source"] == "bundle"
    result = remediate.run_remediation(remediation_options(tmp_path), [record])
    assert result["outcomes"][0]["result"] == "skipped" and result["outcomes"][0]["rungs"] == []
    assert procfs.read_stat("/proc", bare.init_pid).start_time == start_time(bare.init_pid)


def test_wrong_containerd_state_dir_leaves_every_container_unverified(runtimes, tmp_path, cleanup):
    """k3s keeps its state in /run/k3s/containerd: with the default dir nothing can be tied to a bundle."""
    box = containers.CtrContainer(zombies=2)
    cleanup(box)
    result = scan.run_scan(scan.ScanOptions(state_path=str(tmp_path / "state.json"), confirm_count=1,
                                            runtime_files={"containerd_state_dir": str(tmp_path / "nowhere")}))
    assert all(c["container_id"] != box.id for c in result["containers"])
    group = next(g for g in result["host_groups"] if g["parent"]["pid"] == box.init_pid)
    assert group["unverified_identity"]["container_id"] == box.id
    assert "no bundle of containerd namespace" in group["unverified_identity"]["reason"]


NEVER_REAPS = "int main(void) { for (;;) { extern int pause(void); pause(); } }\n"


def test_a_container_process_named_like_a_runtime_is_the_application(runtimes, tmp_path, cleanup):
    """Docker-in-Docker or a CI container runs its own dockerd: zombies it keeps are the application's."""
    binaries = tmp_path / "bin"
    binaries.mkdir()
    (tmp_path / "never_reaps.c").write_text(NEVER_REAPS)
    subprocess.run(["gcc", "-static", "-O2", "-o", str(binaries / "dockerd"), str(tmp_path / "never_reaps.c")],
                   check=True)
    box = containers.DockerContainer(command=["/bin/sh", "-c", "for i in 1 2; do /bin/sleep 0 & done; exec /x/dockerd"],
                                     extra=["-v", "%s:/x:ro" % binaries])
    cleanup(box)
    wait_for(lambda: len(zombie_children(box.init_pid)) >= 1, "zombies of the container's dockerd")
    record = next(c for c in scan_once(tmp_path)["containers"] if c["container_id"] == box.id)
    assert record["init"]["name"] == "dockerd"
    assert record["parent_classes"] == ["application"] and record["candidate"] is True


FAKE_DOCKER_SHIM = textwrap.dedent("""
    import os, sys, time
    # The "init" below the fake shim keeps two zombies.
    child = os.fork()
    if child == 0:
        for _ in range(2):
            if os.fork() == 0:
                os._exit(0)
        time.sleep(600)
        os._exit(0)
    print(child, flush=True)
    time.sleep(600)
""")


def fake_shim(tmp_path, cleanup, namespace, victim_id, own_mount=False):
    """Root posing as Docker's old shim: argv -namespace/-workdir as given; with own_mount, its binary is a
    copy in a private mount namespace (as root in a container runs its image's own files)."""
    if own_mount:
        mount = tmp_path / "image"
        mount.mkdir()
        script = ("mount -t tmpfs none %s && cp %s %s/docker-containerd-shim && exec -a docker-containerd-shim "
                  "%s/docker-containerd-shim -c \"$0\" -namespace %s -workdir /x/%s" % (
                      mount, os.path.realpath(SYSTEM_PYTHON), mount, mount, namespace, victim_id))
        argv = ["unshare", "--mount", "--propagation", "private", "bash", "-c", script, FAKE_DOCKER_SHIM]
    else:
        binary = tmp_path / "docker-containerd-shim"
        os.symlink(os.path.realpath(SYSTEM_PYTHON), binary)
        argv = ["bash", "-c", 'exec -a docker-containerd-shim %s -c "$0" -namespace %s -workdir /x/%s' % (
            binary, namespace, victim_id), FAKE_DOCKER_SHIM]
    shim = Process(argv, cwd="/")
    cleanup(shim)
    init = int(shim.process.stdout.readline())
    wait_for(lambda: len(zombie_children(init)) == 2, "the fake init's zombies")
    # Its "bundle", root-owned, in a directory of its own: the namespace argument points there.
    bundle = os.path.join(namespace, victim_id)
    os.makedirs(bundle)
    with open(os.path.join(bundle, "init.pid"), "w") as handle:
        handle.write(str(init))
    return shim, init


@pytest.mark.parametrize("own_mount", [False, True])
def test_a_shim_namespace_that_escapes_the_state_dir_names_nothing(runtimes, tmp_path, cleanup, own_mount):
    victim = containers.DockerContainer(command=["/bin/sleep", "100000"])
    cleanup(victim)
    started_at = victim.inspect()["State"]["StartedAt"]
    namespace = str(tmp_path / "ns")                        # an absolute path, not a containerd namespace
    shim, init = fake_shim(tmp_path, cleanup, namespace, victim.id, own_mount)
    result = scan_once(tmp_path)
    assert all(c["container_id"] != victim.id for c in result["containers"]), "believed the fake shim"
    assert any(g["parent"]["pid"] == init for g in result["host_groups"])
    remediate.run_remediation(remediation_options(tmp_path, reap_in_place=False), result["to_cure"]["containers"])
    assert victim.inspect()["State"]["StartedAt"] == started_at


def test_roots_own_binary_in_another_mount_namespace_is_not_a_runtime_process(tmp_path, cleanup):
    """Root in a container without a user namespace: uid 0, a root-owned binary, but not the host's file."""
    mount = tmp_path / "image"
    mount.mkdir()
    sleeper = Process(["unshare", "--mount", "--propagation", "private", "bash", "-c",
                       "mount -t tmpfs none %s && cp /bin/sleep %s/sleep && echo ready && exec %s/sleep 600"
                       % (mount, mount, mount)])
    cleanup(sleeper)
    assert sleeper.process.stdout.readline().strip() == "ready"
    wait_for(lambda: os.readlink("/proc/%d/exe" % sleeper.pid) == "%s/sleep" % mount, "the copy to run")
    assert trust.runtime_process_problem("/proc", sleeper.pid).startswith("its executable is not the host's file")
    host = Process(["/bin/sleep", "600"])                   # the same binary, the host's own file: believed
    cleanup(host)
    wait_for(lambda: os.readlink("/proc/%d/exe" % host.pid).endswith("sleep"), "sleep to run")
    assert trust.runtime_process_problem("/proc", host.pid) is None
