import os
import shutil

import pytest

from helpers import containers
from helpers.fleet import FLEET_NODES, TestFleet


@pytest.fixture(scope="session")
def runtimes():
    """containerd and dockerd must answer; under scripts/test.sh a missing one fails the run."""
    if os.geteuid() != 0:
        pytest.skip("container tests need root")
    problems = containers.runtimes_available()
    if problems:
        message = "; ".join(problems) + " (start them with scripts/test-daemons.sh start)"
        if os.environ.get("ZC_REQUIRE_RUNTIMES") == "1":
            pytest.fail(message)
        pytest.skip(message)
    containers.build_rootfs()
    containers.ensure_docker_image()


@pytest.fixture
def cleanup():
    """Collects containers and zombie parents; removes them whatever the test did."""
    things = []
    yield things.append
    for thing in reversed(things):
        if hasattr(thing, "remove"):
            thing.remove()
        else:
            thing.close()


@pytest.fixture(scope="session")
def podman():
    if not containers.podman_available():
        if os.environ.get("ZC_REQUIRE_RUNTIMES") == "1":
            pytest.fail("podman is not usable here")
        pytest.skip("podman is not installed")
    containers.ensure_podman_image()


@pytest.fixture(scope="session")
def fleet(tmp_path_factory):
    """The SSH test fleet: node1..node5 on 127.0.0.10-14:2222, node5 reached through paramiko."""
    if os.geteuid() != 0 or not shutil.which("sshd", path="/usr/sbin:/usr/bin") or not shutil.which("unshare"):
        message = "the SSH test fleet needs root, OpenSSH sshd and unshare"
        if os.environ.get("ZC_REQUIRE_RUNTIMES") == "1":
            pytest.fail(message)
        pytest.skip(message)
    fleet = TestFleet(str(tmp_path_factory.mktemp("fleet")))
    fleet.create(len(FLEET_NODES), paramiko=["node5"], port=2222, first_address=10)
    try:
        yield fleet
    finally:
        fleet.down()


@pytest.fixture
def clean_fleet(fleet):
    """The fleet with every node rebooted and its node files gone."""
    fleet.reset()
    return fleet


@pytest.fixture(scope="session")
def cri_runtime():
    """containerd's CRI (runtime.v1) on $ZC_CONTAINERD_ADDRESS with the test images imported: the sandbox
    image under the exact sandbox_image name of scripts/containerd-test.toml, and busybox. Built and imported
    once per session; at the end every pod this session made is stopped and removed, even a leaked one."""
    from helpers import cri
    from helpers.cri import images

    def unusable(message):
        if os.environ.get("ZC_REQUIRE_RUNTIMES") == "1":
            pytest.fail(message)
        pytest.skip(message)

    if os.geteuid() != 0:
        unusable("real pods need root")
    try:
        client = cri.runtime()
    except (ImportError, RuntimeError) as error:
        unusable("no CRI test client: %s" % error)
    problem = cri.preflight(client)
    if problem:
        unusable(problem)
    sandbox_image = images.sandbox_image_name()
    running = client.config().get("sandboxImage")
    if running != sandbox_image:
        unusable("containerd at %s uses sandbox image %s, scripts/containerd-test.toml names %s: start it with "
                 "that file (scripts/test-daemons.sh)" % (client.address, running, sandbox_image))
    images.import_images(client.address, images.build_images(sandbox_image))
    try:
        yield client
    finally:
        cri.cleanup(client, session=cri.SESSION)


@pytest.fixture
def pods(cri_runtime):
    """A factory of real pods: pods(namespace, name, containers=[cri.ContainerSpec(...)], share_pid=False, ...)
    returns a started helpers.cri.Pod; every pod made is stopped and removed after the test."""
    from helpers import cri

    made = []

    def make(namespace="default", name=None, containers=(), **options):
        pod = cri.Pod(namespace, name or "zc-pod-" + os.urandom(3).hex(), containers=containers,
                      client=cri_runtime, **options)
        made.append(pod)
        return pod

    yield make
    problems = []
    for pod in reversed(made):
        try:
            pod.close()
        except Exception as error:  # close every pod before reporting
            problems.append("%r: %s" % (pod, error))
    assert not problems, "pods not removed: %s" % "; ".join(problems)
