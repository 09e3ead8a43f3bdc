import os

import pytest

from helpers import containers


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
