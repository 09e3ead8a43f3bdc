import pytest

from ansible.module_utils.zombie_cleaner.observe import cgroups

ID = "a" * 64
UID = "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0"


@pytest.mark.parametrize("path, container_id, runtime, pod_uid, conmon", [
    ("/docker/%s" % ID, ID, "docker", None, False),
    ("/system.slice/docker-%s.scope" % ID, ID, "docker", None, False),
    ("/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod%s.slice/cri-containerd-%s.scope"
     % (UID.replace("-", "_"), ID), ID, "containerd", UID, False),
    ("/kubepods/burstable/pod%s/%s" % (UID, ID), ID, None, UID, False),
    ("/kubepods/pod%s/%s" % (UID, ID), ID, None, UID, False),
    ("/kubepods.slice/kubepods-pod%s.slice/crio-%s.scope" % (UID.replace("-", "_"), ID), ID, "cri-o", UID, False),
    ("/kubepods/besteffort/pod%s/crio-%s" % (UID, ID), ID, "cri-o", UID, False),
    ("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod%s.slice/crio-conmon-%s.scope"
     % (UID.replace("-", "_"), ID), ID, "cri-o", UID, True),
    ("/machine.slice/libpod-%s.scope" % ID, ID, "podman", None, False),
    ("/machine.slice/libpod-conmon-%s.scope" % ID, ID, "podman", None, True),
    ("/kubepods/besteffort/pod%s/%s" % ("f" * 32, ID), ID, None, "f" * 32, False),  # static pod uid
    ("/user.slice/user-0.slice/session-1.scope", None, None, None, False),
    ("/", None, None, None, False),
    ("/k8s.io/my-ctr-name", None, None, None, False),
])
def test_parse_cgroup_path(path, container_id, runtime, pod_uid, conmon):
    found = cgroups.parse_cgroup_path(path)
    assert found["container_id"] == container_id
    assert found["runtime"] == runtime
    assert found["pod_uid"] == pod_uid
    assert found["conmon"] is conmon


def test_v2_line_wins_and_v1_root_lines_of_a_zombie_are_ignored():
    entries = [("12", "pids", "/"), ("4", "memory", "/"), ("0", "", "/docker/%s" % ID)]
    assert cgroups.identity_from_cgroups(entries)["container_id"] == ID


def test_v1_only_process_uses_pids_hierarchy():
    entries = [("9", "name=systemd", "/docker/%s" % ID), ("8", "pids", "/docker/%s" % ID), ("0", "", "/")]
    assert cgroups.cgroup_path(entries) == "/docker/%s" % ID
    assert cgroups.cgroup_path(entries, "pids") == "/docker/%s" % ID
    assert cgroups.identity_from_cgroups(entries)["runtime"] == "docker"


def test_zombie_on_pure_v1_has_no_identity():
    entries = [("12", "pids", "/"), ("4", "memory", "/"), ("1", "name=systemd", "/")]
    assert cgroups.identity_from_cgroups(entries)["container_id"] is None


def test_first_container_component_wins_over_nested_names():
    """A container may create nested cgroups named like another container: the runtime's own comes first."""
    victim = "f" * 64
    path = "/kubepods/besteffort/pod%s/%s/cri-containerd-%s.scope" % ("0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0", ID, victim)
    assert cgroups.parse_cgroup_path(path)["container_id"] == ID
