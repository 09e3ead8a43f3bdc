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
