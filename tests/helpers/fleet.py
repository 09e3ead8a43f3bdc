"""The SSH test fleet (tests/fleet/fleet.py) for pytest: bring-up, reset between tests, playbook runs."""

import json
import os
import shutil
import sys

from helpers.ansible_run import BACK_TO_BACK, ROOT, playbook

sys.path.insert(0, os.path.join(ROOT, "tests", "fleet"))
from fleet import Fleet  # noqa: E402  (tests/fleet is a script directory, not a package)

FLEET_SCRIPT = os.path.join(ROOT, "tests", "fleet", "fleet.py")
FLEET_NODES = ["node1", "node2", "node3", "node4", "node5"]


class TestFleet(Fleet):
    """A Fleet with what tests need on top: a clean slate per test and ansible runs against it."""

    __test__ = False  # not a pytest test class

    def reset(self):
        """Every node rebooted (all processes gone) with empty node files; the nodes stop and start all at once."""
        self.stop_all(self.names)
        for name in self.names:
            var = os.path.join(self.node_dir(name), "var")
            shutil.rmtree(var, ignore_errors=True)
            os.makedirs(var, mode=0o700)
        self.start_all(self.names)

    def playbook(self, name, *args, env=None, check=True):
        return playbook("playbooks/%s" % name if "/" not in name else name, "-i", self.inventory, *BACK_TO_BACK, *args,
                        env=dict(self.env(), **(env or {})), check=check)

    def state(self, name):
        path = os.path.join(self.node_dir(name), "var", "state.json")
        if not os.path.exists(path):
            return None
        with open(path) as handle:
            return json.load(handle)

    def state_bytes(self, name):
        path = os.path.join(self.node_dir(name), "var", "state.json")
        return open(path, "rb").read() if os.path.exists(path) else None


def recap(stdout):
    """{host: {ok, changed, unreachable, failed, ...}} from the PLAY RECAP."""
    found = {}
    for line in stdout.split("PLAY RECAP", 1)[-1].splitlines()[1:]:
        if ":" not in line:
            continue
        host, counts = line.split(":", 1)
        found[host.strip()] = {key: int(value) for key, value in (item.split("=") for item in counts.split())}
    return found
