"""Real Kubernetes pods (issue 16): sandboxes and containers made through containerd's CRI as the kubelet makes
them (helpers.cri), scanned by the shipped code. No kubelet: where its restart matters, the kubelet stand-in
(helpers.cri.kubelet) plays it, and says so."""

import json
import os
import subprocess

import psutil
import pytest

from ansible.module_utils.zombie_cleaner.observe import attribution, procfs, runtimes, scan
from helpers import cri
from helpers.cri.kubelet import KubeletStandIn
from helpers.zombies import wait_for, wait_for_zombies, zombie_children

# PID 1 starts a helper shell in the background and becomes sleep, which never reaps. The helper starts three
# children and becomes a short sleep that does not wait for them either; when it ends, its three zombies are
# orphans, adopted by the init of their PID namespace, and the helper is a zombie of PID 1. In a pod of its
# own PID namespace that init is PID 1 (sleep): four zombies. In a pod sharing one PID namespace it is pause,
# which reaps the three: only the helper stays, a child of the living app.
ORPHANS = ["/bin/sh", "-c", "/bin/sh -c 'for i in 1 2 3; do /bin/sleep 0 & done; exec /bin/sleep 0.5' & "
                            "exec /bin/sleep 100000"]


def scan_once(tmp_path, **options):
    return scan.run_scan(scan.ScanOptions(state_path=str(tmp_path / "state.json"), confirm_count=1,
                                          runtime_files=cri.runtime_files(), **options))


def records_of(result, pod):
    """The scan's container records of this pod (any attempt, or the sandbox), by container id."""
    ids = {container.id for container in pod.history} | {pod.sandbox_id}
    return {record["container_id"]: record for record in result["containers"] if record["container_id"] in ids}


def bundle_init_pid(container_id):
    with open(os.path.join(cri.bundle_dir(container_id), "init.pid")) as handle:
        return int(handle.read())


def ppid(pid):
    return psutil.Process(pid).ppid()


def test_a_pod_with_two_containers_names_only_the_one_that_makes_zombies(pods, tmp_path):
    pod = pods("default", "web-" + os.urandom(3).hex(), containers=[cri.ContainerSpec("app", cri.ZOMBIES),
                                                                     cri.ContainerSpec("sidecar", cri.SLEEP)])
    app, sidecar = pod.containers["app"], pod.containers["sidecar"]
    wait_for_zombies(app.init_pid, 3, "the app's zombies")
    shim, pause = pod.shim_pid, pod.pause_pid
    # One shim per pod: parent of pause and of both containers' inits.
    assert ppid(pause) == ppid(app.init_pid) == ppid(sidecar.init_pid) == shim

    records = records_of(scan_once(tmp_path), pod)
    assert list(records) == [app.id]
    record = records[app.id]
    assert (record["namespace"], record["pod"], record["container_name"]) == ("default", pod.name, "app")
    assert record["runtime"] == "containerd" and record["containerd_namespace"] == "k8s.io"
    assert record["pod_uid"] == pod.uid and record["container_type"] == "container"
    assert record["init"]["pid"] == app.init_pid == bundle_init_pid(app.id)
    assert record["shim"]["pid"] == shim and record["shim"]["id"] == pod.sandbox_id == record["sandbox_id"]
    assert record["shim_shared"] is True
    assert {member["container_id"] for member in record["sandbox_members"]} == {pod.sandbox_id, sidecar.id}
    assert sorted(zombie["pid"] for zombie in record["zombies"]) == zombie_children(app.init_pid)
    assert [(parent["pid"], parent["parent_class"]) for parent in record["parents"]] == [(app.init_pid, "application")]
    # pause is neither the init nor a parent of the app's zombies
    assert pause not in {record["init"]["pid"]} | {parent["pid"] for parent in record["parents"]}
    assert record["decision"] == "confirmed" and record["candidate"] is True


def test_a_shared_pid_namespace_pod_names_the_apps_own_init_not_pause(pods, tmp_path):
    """With shareProcessNamespace, pause is PID 1 of the pod; the app's zombies are children of the app,
    which keeps them, and the app's init is its bundle's init.pid all the same."""
    pod = pods("default", "shared-" + os.urandom(3).hex(), share_pid=True,
               containers=[cri.ContainerSpec("app", cri.ZOMBIES)])
    app = pod.containers["app"]
    wait_for_zombies(app.init_pid, 3, "the app's own zombies")
    with open("/proc/%d/status" % pod.pause_pid) as handle:
        assert [line.split()[-1] for line in handle if line.startswith("NSpid:")] == ["1"]   # pause is PID 1 there
    with open(os.path.join(app.bundle, "config.json")) as handle:
        namespaces = {item["type"]: item.get("path") for item in json.load(handle)["linux"]["namespaces"]}
    assert namespaces["pid"] == "/proc/%d/ns/pid" % pod.pause_pid           # the sandbox's PID namespace

    record = records_of(scan_once(tmp_path), pod)[app.id]
    assert record["init"]["pid"] == app.init_pid == bundle_init_pid(app.id) != pod.pause_pid
    assert [parent["pid"] for parent in record["parents"]] == [app.init_pid]
    assert all(zombie["ppid"] != pod.pause_pid for zombie in record["zombies"])


def test_orphans_stay_under_a_non_reaping_pid_1_and_pause_reaps_them_in_a_shared_pid_namespace(pods, tmp_path):
    own = pods("default", "own-" + os.urandom(3).hex(), containers=[cri.ContainerSpec("app", ORPHANS)])
    shared = pods("default", "shared-" + os.urandom(3).hex(), share_pid=True,
                  containers=[cri.ContainerSpec("app", ORPHANS)])
    own_init, shared_init = own.containers["app"].init_pid, shared.containers["app"].init_pid
    wait_for_zombies(own_init, 4, "three orphans and the helper under the container's PID 1")
    wait_for_zombies(shared_init, 1, "the helper under the shared pod's app")
    wait_for(lambda: psutil.Process(shared.pause_pid).children() == [], "pause to reap the three orphans")

    result = scan_once(tmp_path)
    record = records_of(result, own)[own.containers["app"].id]
    assert record["zombie_count"] == 4 and [parent["pid"] for parent in record["parents"]] == [own_init]
    record = records_of(result, shared)[shared.containers["app"].id]
    assert record["zombie_count"] == 1 and [parent["pid"] for parent in record["parents"]] == [shared_init]
    assert zombie_children(shared.pause_pid) == []


def test_an_exec_that_keeps_zombies_is_not_taken_for_the_init(pods, tmp_path):
    """A hung exec (an exec probe, kubectl exec) whose process keeps zombies, in a container whose init makes
    none: the exec'd process is a child of the pod's shim, like the init, yet the init is the bundle's."""
    pod = pods("default", "probe-" + os.urandom(3).hex(), containers=[cri.ContainerSpec("app", cri.SLEEP)])
    app = pod.containers["app"]
    probe = pod.exec_in_background("app", cri.ZOMBIES)         # ExecSync without a timeout
    exec_pid = pod.exec_keeping_zombies("app", 3)
    assert zombie_children(app.init_pid) == []

    record = records_of(scan_once(tmp_path), pod)[app.id]
    assert record["init"]["pid"] == app.init_pid == bundle_init_pid(app.id)
    assert record["init"]["pid"] != exec_pid
    assert [parent["pid"] for parent in record["parents"]] == [exec_pid]
    assert [parent["is_init"] for parent in attribution.parent_summary(record)] == [False]
    assert probe.is_alive()                                     # the exec was still running when scanned


def test_a_kube_system_pod_is_protected_under_the_default_whitelist(pods, tmp_path):
    system = pods("kube-system", "kube-proxy-" + os.urandom(3).hex(), containers=[cri.ContainerSpec("proxy", cri.ZOMBIES)])
    user = pods("default", "proxy-" + os.urandom(3).hex(), containers=[cri.ContainerSpec("proxy", cri.ZOMBIES)])
    for pod in (system, user):
        wait_for_zombies(pod.containers["proxy"].init_pid, 3, "zombies in %s" % pod.namespace)

    result = scan_once(tmp_path)                                # whitelist_patterns: the default
    protected = records_of(result, system)[system.containers["proxy"].id]
    assert protected["confirmed"] is True and protected["protected"] is True and protected["candidate"] is False
    assert protected["protected_by"]["pattern"] == "^kube-system-.*"
    assert protected["decision"] == "protected by whitelist pattern ^kube-system-.*"
    cure = {item["container_id"] for item in result["to_cure"]["containers"]}
    assert system.containers["proxy"].id not in cure
    # The same workload in another namespace is confirmed and to be cured: protection is the namespace's.
    assert user.containers["proxy"].id in cure


def test_the_kubelet_stand_in_replaces_a_stopped_container_and_the_job_finds_the_replacement(pods, tmp_path):
    pod = pods("default", "web-" + os.urandom(3).hex(), containers=[cri.ContainerSpec("app", cri.ZOMBIES),
                                                                     cri.ContainerSpec("sidecar", cri.SLEEP)])
    app, sidecar = pod.containers["app"], pod.containers["sidecar"]
    wait_for_zombies(app.init_pid, 3, "the app's zombies")
    pause, sidecar_init = pod.pause_pid, sidecar.init_pid
    record = records_of(scan_once(tmp_path), pod)[app.id]
    files = runtimes.RuntimeFiles(**cri.runtime_files())
    assert files.find_replacement(record) is None

    with KubeletStandIn([pod], deadline=60) as kubelet:
        app.stop(timeout=2)                                     # what a graceful restart through CRI does
        new = kubelet.wait_for_restart("app")
    assert kubelet.errors == []
    assert (new.attempt, app.state, new.state) == (1, "CONTAINER_EXITED", "CONTAINER_RUNNING")
    assert os.path.exists(new.log_path) and new.log_path.endswith("/app/1.log")
    assert new.status()[0].annotations["io.kubernetes.container.restartCount"] == "1"
    assert files.find_replacement(record) == new.id
    # The same sandbox: pause and the sidecar untouched, the new init a child of the same shim.
    assert (pod.pause_pid, sidecar.init_pid, sidecar.state) == (pause, sidecar_init, "CONTAINER_RUNNING")
    assert ppid(new.init_pid) == pod.shim_pid == record["shim"]["pid"]
    wait_for_zombies(new.init_pid, 3, "the replacement's zombies (the same image)")
    assert records_of(scan_once(tmp_path), pod).keys() == {new.id}


def test_without_a_kubelet_a_stopped_container_has_no_replacement(pods, tmp_path):
    pod = pods("default", "web-" + os.urandom(3).hex(), containers=[cri.ContainerSpec("app", cri.ZOMBIES)])
    app = pod.containers["app"]
    wait_for_zombies(app.init_pid, 3, "the app's zombies")
    record = records_of(scan_once(tmp_path), pod)[app.id]
    app.stop(timeout=2)
    wait_for(lambda: app.state == "CONTAINER_EXITED", "the app to exit")
    assert runtimes.RuntimeFiles(**cri.runtime_files()).find_replacement(record) is None
    assert [container.id for container in pod.list_containers()] == [app.id]
    assert records_of(scan_once(tmp_path), pod) == {}


def test_what_a_real_pod_leaves_on_the_node(pods):
    """The node-local facts the attribution reads, as containerd 1.6's CRI writes them (DESIGN.md section 7)."""
    pod = pods("shop", "cart-" + os.urandom(3).hex(), labels={"app": "cart"},
               containers=[cri.ContainerSpec("app", cri.SLEEP)])
    app = pod.containers["app"]
    with open(os.path.join(app.bundle, "config.json")) as handle:
        spec = json.load(handle)
    assert {key: value for key, value in spec["annotations"].items() if key.startswith("io.kubernetes.")} == {
        "io.kubernetes.cri.container-type": "container", "io.kubernetes.cri.container-name": "app",
        "io.kubernetes.cri.sandbox-id": pod.sandbox_id, "io.kubernetes.cri.sandbox-name": pod.name,
        "io.kubernetes.cri.sandbox-namespace": "shop", "io.kubernetes.cri.sandbox-uid": pod.uid,
        "io.kubernetes.cri.image-name": cri.BUSYBOX_IMAGE}
    with open(os.path.join(pod.sandbox_bundle, "config.json")) as handle:
        sandbox_annotations = json.load(handle)["annotations"]
    assert sandbox_annotations["io.kubernetes.cri.container-type"] == "sandbox"
    assert sandbox_annotations["io.kubernetes.cri.sandbox-log-directory"] == pod.log_directory
    # The kubelet's labels are containerd metadata only, never in the bundle.
    info = json.loads(subprocess.run(["ctr", "--address", cri.ADDRESS, "-n", "k8s.io", "containers", "info", app.id],
                                     check=True, capture_output=True, text=True).stdout)
    assert info["Labels"]["io.kubernetes.pod.name"] == pod.name and info["Labels"]["io.kubernetes.container.name"] == "app"
    assert not any(key.startswith("io.kubernetes.pod.") or key == "app" for key in spec["annotations"])
    assert spec["linux"]["cgroupsPath"] == "/kubepods/besteffort/pod%s/%s" % (pod.uid, app.id)
    assert bundle_init_pid(app.id) == app.init_pid and bundle_init_pid(pod.sandbox_id) == pod.pause_pid
    assert os.path.isfile(os.path.join(cri.POD_LOG_ROOT, "shop_%s_%s" % (pod.name, pod.uid), "app", "0.log"))
    shim_argv = procfs.read_cmdline("/proc", pod.shim_pid)
    assert os.path.basename(shim_argv[0]) == "containerd-shim-runc-v2"
    assert shim_argv[shim_argv.index("-namespace") + 1] == "k8s.io" and shim_argv[shim_argv.index("-id") + 1] == pod.sandbox_id
    assert psutil.Process(pod.pause_pid).uids().real == 65535 and psutil.Process(pod.pause_pid).name() == "pause"


def test_closing_a_pod_leaves_no_process_bundle_log_or_cgroup(cri_runtime):
    pod = cri.Pod("default", "gone-" + os.urandom(3).hex(), containers=[cri.ContainerSpec("app", cri.ZOMBIES)],
                  client=cri_runtime)
    try:
        app = pod.containers["app"]
        processes = [pod.shim_pid, pod.pause_pid, app.init_pid]
        cgroups = [path for path in (os.path.join(cri.CGROUP_ROOT, name, pod.cgroup_parent.strip("/"))
                                     for name in os.listdir(cri.CGROUP_ROOT)) if os.path.isdir(path)]
        paths = [app.bundle, pod.sandbox_bundle, pod.log_directory] + cgroups
        assert cgroups and all(os.path.exists(path) for path in paths)
    finally:
        pod.close()
    wait_for(lambda: not any(psutil.pid_exists(pid) for pid in processes), "the pod's processes to end")
    assert [path for path in paths if os.path.exists(path)] == []
    assert [item.id for item in cri_runtime.sandboxes({"io.kubernetes.pod.uid": pod.uid})] == []


@pytest.fixture(autouse=True)
def _no_pod_left(cri_runtime):
    """Each test's pods are gone afterwards (the pods fixture removed them)."""
    before = {item.id for item in cri_runtime.sandboxes({cri.SESSION_LABEL: cri.SESSION})}
    yield
    left = {item.id for item in cri_runtime.sandboxes({cri.SESSION_LABEL: cri.SESSION})} - before
    assert not left, "sandboxes left behind: %s" % sorted(left)


# --- The kubelet's path, end to end (issue 16, item 3): site.yml cures an app container of a real pod ---

def ctr_recorder(tmp_path):
    """A ctr stand-in that records every command line, then runs the real ctr."""
    log = tmp_path / "ctr.argv"
    stand_in = tmp_path / "ctr"
    stand_in.write_text('#!/bin/sh\necho "$*" >> %s\nexec %s "$@"\n' % (log, subprocess.run(
        ["sh", "-c", "command -v ctr"], capture_output=True, text=True, check=True).stdout.strip()))
    stand_in.chmod(0o755)
    return str(stand_in), log


def cure_pod_by_site(tmp_path, *extra):
    """Three back-to-back site.yml runs that may only restart (no reap in place), as the schedule would."""
    from helpers import ansible_run
    files = [arg for key, value in cri.runtime_files().items() for arg in ("-e", "zombie_cleaner_%s=%s" % (key, value))]
    stand_in, log = ctr_recorder(tmp_path)
    results = None
    for _ in range(3):
        _, results = ansible_run.site(tmp_path, "-e", "zombie_cleaner_reap_in_place=false",
                                      "-e", "zombie_cleaner_container_timeout=3s", "-e", "zombie_cleaner_ctr_bin=%s" % stand_in,
                                      *files, *extra)
    return ansible_run.outcomes_by_id(results), log.read_text() if log.exists() else ""


def test_site_cures_a_pods_app_container_and_finds_the_kubelets_replacement(pods, tmp_path):
    pod = pods("default", "web-" + os.urandom(3).hex(), containers=[cri.ContainerSpec("app", cri.ZOMBIES),
                                                                     cri.ContainerSpec("sidecar", cri.SLEEP)])
    app, sidecar = pod.containers["app"], pod.containers["sidecar"]
    wait_for_zombies(app.init_pid, 3, "the app's zombies")
    untouched = (pod.shim_pid, pod.pause_pid, sidecar.init_pid)
    with KubeletStandIn([pod], deadline=120, names=["app"]) as kubelet:
        outcomes, ctr_calls = cure_pod_by_site(tmp_path, "-e", "zombie_cleaner_replacement_wait=20s")
        new = kubelet.wait_for_restart("app")
    outcome = outcomes[app.id]
    assert outcome["result"] == "cured", outcome
    # sleep as PID 1 ignores SIGTERM: the graceful stop through the runtime times out, SIGKILL of the init ends it.
    assert [step["rung"] for step in outcome["rungs"]] == ["restart", "kill_init"], outcome["rungs"]
    assert outcome["replacement"] == {"container_id": new.id, "attempt": 1}
    assert "the kubelet started %s (attempt 1)" % new.id[:12] in outcome["reason"]
    assert (pod.shim_pid, pod.pause_pid, sidecar.init_pid) == untouched and sidecar.state == "CONTAINER_RUNNING"
    # Stopped through the runtime with a grace period; never deleted or started behind the kubelet's back.
    assert "-n k8s.io task kill -s SIGTERM %s" % app.id in ctr_calls
    assert " task delete " not in ctr_calls and " task start " not in ctr_calls


def test_site_without_a_kubelet_warns_that_no_replacement_came(pods, tmp_path):
    pod = pods("default", "web-" + os.urandom(3).hex(), containers=[cri.ContainerSpec("app", cri.ZOMBIES)])
    app = pod.containers["app"]
    wait_for_zombies(app.init_pid, 3, "the app's zombies")
    outcomes, ctr_calls = cure_pod_by_site(tmp_path, "-e", "zombie_cleaner_replacement_wait=1s")
    outcome = outcomes[app.id]
    assert outcome["result"] == "cured" and outcome["replacement"] is None, outcome
    assert "no new container of the pod seen within replacement_wait" in outcome["warning"]
    assert " task start " not in ctr_calls and app.state == "CONTAINER_EXITED"
