"""Attribution over fixture /proc trees: one per runtime layout, including those that cannot run here."""

import os

import pytest

from ansible.module_utils.zombie_cleaner.observe import attribution, procfs, runtimes
from helpers.procfixture import FakeNode

SANDBOX = "5" * 64
APP = "a" * 64
SIDECAR = "b" * 64
UID = "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0"
CRI_SHIM = ["/usr/bin/containerd-shim-runc-v2", "-namespace", "k8s.io", "-id", SANDBOX,
            "-address", "/run/containerd/containerd.sock"]


def attribute(node):
    table = procfs.scan(str(node.proc))
    worker = attribution.Attributor(table, str(node.proc), runtimes.RuntimeFiles(**node.runtime_files()))
    containers, hosts = worker.attribute([p for p in table.values() if p.state == "Z"])
    return containers, hosts, worker


def cri_annotations(container_id, name, kind="container"):
    return {"io.kubernetes.cri.container-type": kind, "io.kubernetes.cri.sandbox-id": SANDBOX,
            "io.kubernetes.cri.sandbox-name": "web-1", "io.kubernetes.cri.sandbox-namespace": "shop",
            "io.kubernetes.cri.sandbox-uid": UID, "io.kubernetes.cri.container-name": name}


def containerd_pod(node):
    """One CRI shim serving a pod sandbox (pause) and two app containers."""
    node.add(1, 0, "systemd")
    node.add(50, 1, "containerd")
    node.add(100, 1, "containerd-shim", cmdline=CRI_SHIM)
    pod = "/kubepods/besteffort/pod%s/" % UID
    node.add(101, 100, "pause", cgroup=pod + SANDBOX)
    node.add(110, 100, "app server", cgroup=pod + APP)
    node.add(111, 110, "worker", state="Z", cgroup=pod + APP)
    node.add(112, 110, "worker", state="Z", cgroup=pod + APP)
    node.add(120, 100, "sidecar", cgroup=pod + SIDECAR)
    node.add(121, 120, "sh", cgroup=pod + SIDECAR)          # a child of init that does not reap
    node.add(122, 121, "probe", state="Z", cgroup=pod + SIDECAR)
    node.containerd_bundle("k8s.io", SANDBOX, 101, cri_annotations(SANDBOX, None, "sandbox"))
    node.containerd_bundle("k8s.io", APP, 110, cri_annotations(APP, "app"))
    node.containerd_bundle("k8s.io", SIDECAR, 120, cri_annotations(SIDECAR, "sidecar"))


def test_containerd_cri_pod_sandbox_with_two_containers(tmp_path):
    node = FakeNode(tmp_path)
    containerd_pod(node)
    containers, hosts, _ = attribute(node)
    assert hosts == {}
    assert sorted(containers) == [APP, SIDECAR]
    app = containers[APP]
    assert (app["namespace"], app["pod"], app["container_name"], app["pod_uid"]) == ("shop", "web-1", "app", UID)
    assert app["runtime"] == "containerd" and app["containerd_namespace"] == "k8s.io"
    assert app["shim"]["pid"] == 100 and app["shim"]["id"] == SANDBOX and app["shim_shared"] is True
    assert app["init"]["pid"] == 110 and app["init"]["name"] == "app server"
    assert app["id_source"] == "bundle"
    assert [z["pid"] for z in app["zombies"]] == [111, 112]
    assert app["parent_classes"] == ["application"]
    sidecar = containers[SIDECAR]
    assert sidecar["parents"] == [dict(pid=121, name="sh", start_time=sidecar["parents"][0]["start_time"],
                                       parent_class="application", zombie_count=1)]


def test_containerd_without_bundle_is_identity_unverified(tmp_path):
    """A wrong containerd_state_dir (k3s keeps /run/k3s/containerd): cgroup and argv alone prove nothing."""
    node = FakeNode(tmp_path)
    node.add(100, 1, "containerd-shim", cmdline=CRI_SHIM)
    slice_ = "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod%s.slice/" % UID.replace("-", "_")
    node.add(110, 100, "app", cgroup=slice_ + "cri-containerd-%s.scope" % APP)
    node.add(111, 110, "w", state="Z", cgroup=slice_ + "cri-containerd-%s.scope" % APP)
    node.pod_log_dir("shop", "web-1", UID)
    containers, hosts, _ = attribute(node)
    assert containers == {}
    (group,) = hosts.values()
    claim = group["unverified_identity"]
    assert claim["container_id"] == SANDBOX and claim["source"] == "argv of containerd-shim-runc-v2[100]"
    assert "no bundle of containerd namespace k8s.io" in claim["reason"]


def test_docker_container_with_cri_dockerd_labels(tmp_path):
    node = FakeNode(tmp_path)
    node.add(200, 1, "containerd-shim", cmdline=["containerd-shim-runc-v2", "-namespace", "moby", "-id", APP,
                                                  "-address", "/run/containerd/containerd.sock"])
    node.add(210, 200, "node", cgroup="/docker/" + APP)
    node.add(211, 210, "npm", state="Z")
    node.containerd_bundle("moby", APP, 210)
    node.docker_config(APP, "k8s_app_web-1_shop_%s_0" % UID, {
        "io.kubernetes.pod.name": "web-1", "io.kubernetes.pod.namespace": "shop",
        "io.kubernetes.container.name": "app", "io.kubernetes.pod.uid": UID})
    containers, _, _ = attribute(node)
    record = containers[APP]
    assert record["runtime"] == "docker" and record["id_source"] == "bundle"
    assert (record["namespace"], record["pod"], record["container_name"]) == ("shop", "web-1", "app")
    assert record["shim_shared"] is False


def test_old_docker_containerd_shim(tmp_path):
    node = FakeNode(tmp_path)
    node.add(300, 1, "docker-containe", cmdline=[
        "docker-containerd-shim", "-namespace", "moby", "-workdir",
        "/var/lib/docker/containerd/daemon/io.containerd.runtime.v1.linux/moby/" + APP,
        "-address", "/var/run/docker/containerd/docker-containerd.sock", "-runtime-root", "/var/run/docker/runtime-runc"])
    node.add(310, 300, "java", cgroup="8:pids:/docker/%s\n1:name=systemd:/docker/%s\n" % (APP, APP))
    node.add(311, 310, "sh", state="Z", cgroup="8:pids:/\n1:name=systemd:/\n")
    node.docker_config(APP, "legacy-app")
    node.containerd_bundle("moby", APP, 310, v1=True)
    containers, _, _ = attribute(node)
    assert containers[APP]["shim"]["kind"] == "containerd-v1"
    assert containers[APP]["runtime"] == "docker" and containers[APP]["name"] == "legacy-app"


def test_very_old_docker_shim_with_positional_id(tmp_path):
    node = FakeNode(tmp_path)
    node.add(300, 1, "docker-containe", cmdline=["docker-containerd-shim", APP, "/var/run/docker/libcontainerd/" + APP,
                                                  "docker-runc"])
    node.add(310, 300, "java")
    node.add(311, 310, "sh", state="Z")
    containers, hosts, _ = attribute(node)
    assert containers == {}            # no bundle ties the id to the shim: reported, never acted on
    assert [g["unverified_identity"]["container_id"] for g in hosts.values()] == [APP]


def test_crio_conmon(tmp_path):
    node = FakeNode(tmp_path)
    node.add(400, 1, "conmon", cmdline=[
        "/usr/bin/conmon", "-b", "/run/containers/storage/overlay-containers/%s/userdata" % APP, "-c", APP,
        "--exit-dir", "/var/run/crio/exits", "-n", "k8s_app_web-1_shop_%s_0" % UID, "-r", "/usr/bin/runc",
        "-u", APP, "-s"])
    node.add(410, 400, "nginx", cgroup="/kubepods.slice/kubepods-pod%s.slice/crio-%s.scope" % (UID.replace("-", "_"), APP))
    node.add(411, 410, "nginx", state="Z")
    node.conmon_userdata(node.crio, APP, conmon_pid=400, init_pid=410)
    containers, _, _ = attribute(node)
    record = containers[APP]
    assert record["runtime"] == "cri-o" and record["id_source"] == "conmon"
    assert (record["namespace"], record["pod"], record["container_name"], record["pod_uid"]) == (
        "shop", "web-1", "app", UID)


def test_crio_annotations_win_over_conmon_name(tmp_path):
    node = FakeNode(tmp_path)
    node.add(400, 1, "conmon", cmdline=["/usr/bin/conmon", "-c", APP, "-n", "k8s_x_y_z_%s_0" % UID])
    node.add(410, 400, "nginx")
    node.add(411, 410, "nginx", state="Z")
    node.conmon_userdata(node.crio, APP, {"io.kubernetes.pod.name": "web-1", "io.kubernetes.pod.namespace": "shop",
                                          "io.kubernetes.container.name": "app", "io.kubernetes.pod.uid": UID},
                         conmon_pid=400)
    containers, _, _ = attribute(node)
    assert (containers[APP]["namespace"], containers[APP]["pod"]) == ("shop", "web-1")


def test_podman_conmon_as_parent_is_a_runtime_fault(tmp_path):
    node = FakeNode(tmp_path)
    node.add(500, 1, "conmon", cmdline=[
        "/usr/bin/conmon", "--api-version", "1", "-c", APP, "-u", APP, "-r", "/usr/bin/crun",
        "-b", "/var/lib/containers/storage/overlay-containers/%s/userdata" % APP, "-n", "web",
        "--exit-command", "/usr/bin/podman", "--exit-command-arg", "container"])
    node.add(510, 500, "sleep", state="Z")   # the init died and conmon did not reap it
    node.conmon_userdata(node.podman, APP, conmon_pid=500, init_pid=510, pid_file="conmon.pid")
    containers, _, _ = attribute(node)
    record = containers[APP]
    assert record["runtime"] == "podman" and record["name"] == "web"
    assert record["parent_classes"] == ["runtime"] and record["init_is_zombie"] is True


def test_kata_shim_is_reported_not_guessed(tmp_path):
    node = FakeNode(tmp_path)
    node.add(600, 1, "containerd-shim", cmdline=["/usr/bin/containerd-shim-kata-v2", "-namespace", "k8s.io",
                                                  "-address", "/run/containerd/containerd.sock", "-id", SANDBOX])
    node.add(601, 600, "virtiofsd", state="Z")
    containers, hosts, worker = attribute(node)
    assert containers == {}
    assert [g["parent"]["pid"] for g in hosts.values()] == [600]
    assert worker.vm_sandboxes() == [{"pid": 600, "binary": "containerd-shim-kata-v2", "id": SANDBOX}]


def test_host_zombies_grouped_by_parent(tmp_path):
    node = FakeNode(tmp_path)
    node.add(1, 0, "init")
    node.add(700, 1, "cron")
    node.add(701, 700, "x) (y z", state="Z")
    node.add(702, 700, "mail", state="Z")
    node.add(703, 1, "gone", state="Z")
    containers, hosts, _ = attribute(node)
    assert containers == {}
    groups = {g["parent"]["pid"]: g for g in hosts.values()}
    assert sorted(groups) == [1, 700]
    assert [z["name"] for z in groups[700]["zombies"]] == ["x) (y z", "mail"]
    assert groups[1]["parent_is_host_init"] is True and groups[700]["parent_is_host_init"] is False


def test_a_process_merely_named_like_a_shim_is_not_one(tmp_path):
    node = FakeNode(tmp_path)
    node.add(800, 1, "containerd-shim", cmdline=["/tmp/containerd-shim-runc-v2"])  # no -id: impostor
    node.add(810, 800, "child")
    node.add(811, 810, "z", state="Z")
    containers, hosts, _ = attribute(node)
    assert containers == {} and len(hosts) == 1


def test_host_parent_of_a_zombie_in_a_container_cgroup_is_reported_as_a_claim(tmp_path):
    node = FakeNode(tmp_path)
    node.add(900, 1, "kubelet")
    node.add(901, 900, "nsenter", state="Z", cgroup="0::/kubepods/besteffort/pod%s/%s\n" % (UID, APP))
    containers, hosts, _ = attribute(node)
    assert containers == {}
    (group,) = hosts.values()
    assert group["parent"]["pid"] == 900
    assert group["unverified_identity"]["container_id"] == APP
    assert group["unverified_identity"]["source"] == "cgroup of zombie 901"


def test_zombie_that_is_a_child_of_the_shim_is_a_runtime_fault(tmp_path):
    node = FakeNode(tmp_path)
    node.add(100, 1, "containerd-shim", cmdline=CRI_SHIM)
    node.add(101, 100, "pause", cgroup="/kubepods/besteffort/pod%s/%s" % (UID, SANDBOX))
    node.add(130, 100, "probe.sh", state="Z", cgroup="0::/kubepods/besteffort/pod%s/%s\n" % (UID, APP))
    node.containerd_bundle("k8s.io", SANDBOX, 101, cri_annotations(SANDBOX, None, "sandbox"))
    containers, _, _ = attribute(node)
    # Not an init of any bundle: it belongs to the shim's own bundle, the sandbox.
    assert list(containers) == [SANDBOX]
    assert containers[SANDBOX]["parent_classes"] == ["runtime"] and containers[SANDBOX]["init"]["pid"] == 101


@pytest.mark.parametrize("zombies", [1, 50])
def test_cmdline_is_read_only_for_shim_like_ancestors(tmp_path, zombies):
    node = FakeNode(tmp_path)
    containerd_pod(node)
    for pid in range(2000, 2000 + zombies):
        node.add(pid, 110, "w", state="Z")
    for pid in range(3000, 3100):
        node.add(pid, 1, "busy")      # unrelated live processes
    _, _, worker = attribute(node)
    assert worker.cmdline_reads == 1


# --- What a workload controls is evidence, never proof (DESIGN.md section 8) ---

def docker_container(node, shim_pid=200, init_pid=210, **shim):
    """A real-looking Docker container: moby shim, its init, a moby bundle naming that init."""
    node.add(shim_pid, 1, "containerd-shim", cmdline=["/usr/bin/containerd-shim-runc-v2", "-namespace", "moby",
                                                       "-id", APP, "-address", "/run/containerd/containerd.sock"],
             **shim)
    node.add(init_pid, shim_pid, "sleep", cgroup="/docker/" + APP)
    node.add(init_pid + 1, init_pid, "sh", state="Z")
    node.containerd_bundle("moby", APP, init_pid)


@pytest.mark.parametrize("impostor", [
    {"uid": 65534},                                   # an unprivileged user's process
    {"user_ns": "user:[4026532999]"},                 # root of a user namespace (rootless runtime, container)
    {"exe": "WRITABLE"},                              # a binary others could have replaced
])
def test_impostor_shim_naming_a_real_container_is_not_believed(tmp_path, impostor):
    node = FakeNode(tmp_path)
    docker_container(node)                            # the victim, with its real bundle
    if impostor.get("exe") == "WRITABLE":
        binary = tmp_path / "containerd-shim-runc-v2"
        binary.write_text("#!/bin/sh\n")
        binary.chmod(0o777)
        impostor = {"exe": str(binary)}
    node.add(800, 1, "containerd-shim", cmdline=["/tmp/containerd-shim-runc-v2", "-namespace", "moby", "-id", APP,
                                                  "-address", "/run/containerd/containerd.sock"], **impostor)
    node.add(810, 800, "child", cgroup="/docker/" + APP)    # even its cgroup names the victim
    node.add(811, 810, "z", state="Z")
    node.add(812, 810, "z", state="Z")
    containers, hosts, _ = attribute(node)
    assert list(containers) == [APP] and [z["pid"] for z in containers[APP]["zombies"]] == [211]
    impostor_group = hosts["host:810:%d" % node_start(node, 810)]
    assert [z["pid"] for z in impostor_group["zombies"]] == [811, 812]
    claim = impostor_group["unverified_identity"]
    assert claim["container_id"] == APP and "is not believed" in claim["reason"]


def node_start(node, pid):
    return procfs.read_stat(str(node.proc), pid).start_time


def test_trusted_shim_whose_bundle_names_another_init_is_unverified(tmp_path):
    """A real root shim, but the bundle of the id it names ties another process to it: no identity."""
    node = FakeNode(tmp_path)
    node.add(200, 1, "containerd-shim", cmdline=["/usr/bin/containerd-shim-runc-v2", "-namespace", "moby",
                                                  "-id", APP])
    node.add(210, 200, "sleep")
    node.add(211, 210, "sh", state="Z")
    node.add(300, 1, "sleep")                          # the bundle's init is not the shim's child
    node.containerd_bundle("moby", APP, 300)
    containers, hosts, _ = attribute(node)
    assert containers == {} and "has an init that is a child of shim 200" in \
        next(iter(hosts.values()))["unverified_identity"]["reason"]


def test_bundle_of_another_sandbox_is_not_the_shims(tmp_path):
    """The init is in a bundle, but that bundle belongs to another sandbox than the shim's -id."""
    node = FakeNode(tmp_path)
    node.add(100, 1, "containerd-shim", cmdline=CRI_SHIM)
    node.add(110, 100, "app")
    node.add(111, 110, "w", state="Z")
    other = dict(cri_annotations(APP, "app"), **{"io.kubernetes.cri.sandbox-id": "9" * 64})
    node.containerd_bundle("k8s.io", APP, 110, other)
    containers, hosts, _ = attribute(node)
    assert containers == {} and len(hosts) == 1


def test_symlinked_or_user_owned_bundle_files_are_not_believed(tmp_path):
    node = FakeNode(tmp_path)
    docker_container(node)
    init_pid = node.containerd / "io.containerd.runtime.v2.task" / "moby" / APP / "init.pid"
    os.chown(init_pid, 65534, 65534)
    containers, hosts, _ = attribute(node)
    assert containers == {} and len(hosts) == 1


def test_conmon_without_its_pid_file_is_unverified(tmp_path):
    """A rootless podman's real conmon (or any process named conmon): no root-owned pid file names it."""
    node = FakeNode(tmp_path)
    node.add(500, 1, "conmon", cmdline=["/usr/bin/conmon", "-c", APP, "-n", "web", "--exit-command", "podman"])
    node.add(510, 500, "sleep")
    node.add(511, 510, "sh", state="Z")
    node.conmon_userdata(node.podman, APP, conmon_pid=999, pid_file="conmon.pid")   # another conmon's
    containers, hosts, _ = attribute(node)
    assert containers == {} and "conmon pid file" in next(iter(hosts.values()))["unverified_identity"]["reason"]


def test_runtime_named_process_inside_a_container_is_the_application(tmp_path):
    """podman in a CI container, dockerd in Docker-in-Docker: the container's own processes."""
    node = FakeNode(tmp_path)
    docker_container(node)
    node.add(220, 210, "podman", exe=str(tmp_path / "proc"))   # a file of the container's root, not the host's
    node.add(221, 220, "conmon", state="Z")
    containers, _, _ = attribute(node)
    parents = {p["pid"]: p["parent_class"] for p in containers[APP]["parents"]}
    assert parents == {210: "application", 220: "application"}


def test_kubernetes_container_without_pod_identity_is_identity_unknown(tmp_path):
    node = FakeNode(tmp_path)
    node.add(100, 1, "containerd-shim", cmdline=CRI_SHIM)
    node.add(101, 100, "pause")
    node.add(110, 100, "app")
    node.add(111, 110, "w", state="Z")
    node.containerd_bundle("k8s.io", SANDBOX, 101)
    node.containerd_bundle("k8s.io", APP, 110, {"io.kubernetes.cri.sandbox-id": SANDBOX})
    containers, _, _ = attribute(node)
    assert containers[APP]["identity_unknown"] and containers[APP]["shim_shared"] is True


def test_pod_record_lists_the_other_containers_of_its_sandbox(tmp_path):
    node = FakeNode(tmp_path)
    containerd_pod(node)
    containers, _, _ = attribute(node)
    members = {m["container_id"]: m["container_name"] for m in containers[APP]["sandbox_members"]}
    assert members == {SANDBOX: None, SIDECAR: "sidecar"}
    assert containers[APP]["identity_unknown"] is None


def test_a_leader_that_called_pthread_exit_is_not_a_zombie(tmp_path):
    node = FakeNode(tmp_path)
    node.add(700, 1, "server")
    node.add(701, 700, "worker", state="Z", threads=3)      # leader gone, two threads still run
    node.add(702, 700, "done", state="Z")
    table = procfs.scan(str(node.proc))
    assert [pid for pid, stat in sorted(table.items()) if procfs.is_zombie(stat)] == [702]


@pytest.mark.parametrize("flags", [["-namespace", "/tmp/own", "-id", APP], ["-namespace", "../../tmp", "-id", APP],
                                   ["-namespace", "moby", "-id", "../" + APP], ["-namespace", "moby", "-id", "a/b"]])
def test_shim_namespaces_and_ids_are_identifiers_never_paths(flags):
    assert runtimes.identify_shim(["/usr/bin/containerd-shim-runc-v2"] + flags) is None
    assert runtimes.identify_shim(["/usr/bin/containerd-shim-runc-v2", "-namespace", "moby", "-id", APP])
