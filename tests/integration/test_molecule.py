"""`molecule test` on the default scenario: create/destroy bring the SSH test fleet up and down,
converge runs site.yml, idempotence holds after the cure, verify checks the nodes over SSH."""

import os
import re
import subprocess

from helpers.ansible_run import ROOT


def listening(address):
    return address in subprocess.run(["ss", "-ltnH"], capture_output=True, text=True).stdout


def test_molecule_default_scenario(tmp_path):
    env = dict(os.environ, ANSIBLE_FORCE_COLOR="0", ANSIBLE_NOCOLOR="1", NO_COLOR="1", PY_COLORS="0",
               MOLECULE_NO_LOG="false")
    result = subprocess.run(["molecule", "test"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-5000:]
    for action in ("create", "prepare", "converge", "idempotence", "verify", "destroy"):
        assert re.search(r"default\W+%s\W+Executed: Successful" % action, output), (action, output[-3000:])
    # The converge run cured both nodes' zombies in place; idempotence saw nothing to change.
    assert len(re.findall(r"reaped_in_place by reap_in_place", output)) == 2, output[-5000:]
    assert "All assertions passed" in output
    # destroy left nothing listening or running.
    assert not listening("127.0.0.30:2222") and not listening("127.0.0.31:2222")
    # (Other tests' fleet may be up: only molecule's nodes, whose files are in its ephemeral directory, count.)
    leftovers = subprocess.run(["pgrep", "-af", r"node_init\.py .*molecule"], capture_output=True, text=True).stdout
    assert leftovers == ""
