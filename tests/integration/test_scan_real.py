"""The scan over this machine's real /proc: real zombies, real containerd and Docker containers."""

from ansible.module_utils.zombie_cleaner.observe import scan
from helpers import containers
from helpers.zombies import ZombieParent, start_time, zombie_pids_psutil

UID = "7a1c8f02-3c1e-4d55-9e3b-0d2f6b1c9a77"


def scan_now(tmp_path, **options):
    return scan.run_scan(scan.ScanOptions(state_path=str(tmp_path / "state.json"), **options))


def test_host_zombies_are_found_with_their_parent_and_match_psutil(tmp_path, cleanup):
    parent = ZombieParent(5)
    cleanup(parent)
    for _ in range(5):  # retry until the machine's own zombies hold still around the scan
        before = zombie_pids_psutil()
        result = scan_now(tmp_path)
        after = zombie_pids_psutil()
        if before == after:
            break
    # Every zombie psutil sees is counted, in some group; each group lists a sample of them (at most 10, oldest
    # first: the result is bounded), never one psutil does not see.
    groups = result["containers"] + result["host_groups"]
    assert before == after and sum(g["zombie_count"] for g in groups) == len(before) == result["summary"]["zombies"]
    sampled = {z["pid"] for g in groups for z in g["zombies"]}
    assert sampled <= before and all(len(g["zombies"]) == min(g["zombie_count"], 10) for g in groups)
    group = next(g for g in result["host_groups"] if g["parent"]["pid"] == parent.pid)
    assert sorted(z["pid"] for z in group["zombies"]) == sorted(parent.zombies)
    assert group["parent"]["start_time"] == start_time(parent.pid)
    assert group["candidate"] is False and group["parent_is_host_init"] is False


def test_containerd_pod_sandbox_shim_serves_two_containers(runtimes, tmp_path, cleanup):
    sandbox = containers.CtrContainer(command=["/bin/sleep", "100000"], annotations={
        "io.kubernetes.cri.container-type": "sandbox", "io.kubernetes.cri.sandbox-id": "zc-sandbox-" + UID[:8],
        "io.kubernetes.cri.sandbox-name": "web-1", "io.kubernetes.cri.sandbox-namespace": "shop"},
        name="zc-sandbox-" + UID[:8], namespace=containers.CRI_NAMESPACE)
    cleanup(sandbox)
    app = containers.CtrContainer(zombies=3, cgroup="/kubepods/besteffort/pod%s/zc-app" % UID, annotations={
        "io.kubernetes.cri.container-type": "container", "io.kubernetes.cri.sandbox-id": sandbox.id,
        "io.kubernetes.cri.sandbox-name": "web-1", "io.kubernetes.cri.sandbox-namespace": "shop",
        "io.kubernetes.cri.container-name": "app"}, namespace=containers.CRI_NAMESPACE)
    cleanup(app)
    result = scan_now(tmp_path)
    record = next(c for c in result["containers"] if c["container_id"] == app.id)
    assert (record["namespace"], record["pod"], record["container_name"]) == ("shop", "web-1", "app")
    assert record["pod_uid"] == UID                       # from the kubepods cgroup path
    assert record["runtime"] == "containerd" and record["containerd_namespace"] == "k8s.io"
    assert record["init"]["pid"] == app.init_pid
    assert record["shim"]["id"] == sandbox.id and record["shim_shared"] is True
    assert sorted(z["pid"] for z in record["zombies"]) == app.zombies
    assert record["parent_classes"] == ["application"]
    assert all(c["container_id"] != sandbox.id for c in result["containers"])  # no zombies there


def test_docker_container_with_kubernetes_labels(runtimes, tmp_path, cleanup):
    plain = containers.DockerContainer(zombies=2)
    cleanup(plain)
    kube = containers.DockerContainer(zombies=4, labels={
        "io.kubernetes.pod.name": "api-0", "io.kubernetes.pod.namespace": "payments",
        "io.kubernetes.container.name": "api"})
    cleanup(kube)
    result = scan_now(tmp_path, whitelist_patterns=["^payments-api-.*"])
    by_id = {c["container_id"]: c for c in result["containers"]}
    assert by_id[plain.id]["runtime"] == "docker" and by_id[plain.id]["name"] == plain.name
    assert sorted(z["pid"] for z in by_id[plain.id]["zombies"]) == plain.zombies
    assert by_id[plain.id]["shim"]["id"] == plain.id and by_id[plain.id]["shim_shared"] is False
    record = by_id[kube.id]
    assert (record["namespace"], record["pod"], record["container_name"]) == ("payments", "api-0", "api")
    assert record["zombie_count"] == 4
    assert record["protected"] is True and record["protected_by"]["subject"] == "payments-api-0"


def test_podman_container_through_conmon(podman, tmp_path, cleanup):
    box = containers.PodmanContainer(zombies=2)
    cleanup(box)
    result = scan_now(tmp_path)
    record = {c["container_id"]: c for c in result["containers"]}[box.id]
    assert record["runtime"] == "podman" and record["name"] == box.name and record["id_source"] == "conmon"
    assert record["shim"]["binary"] == "conmon" and record["init"]["pid"] == box.init_pid
    assert sorted(z["pid"] for z in record["zombies"]) == box.zombies
    assert record["parent_classes"] == ["application"]
