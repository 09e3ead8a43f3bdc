"""A node without zombies runs the scan without loading the attribution's code (issue 17).

A module runs from a zip and compiles every module it imports from source on every run: on a zombie-free node,
most of a fleet, the attribution (attribution, records, runtimes, trust) was a third of the module's own
start-up. Each run here is a fresh interpreter, so sys.modules shows what the run itself imported."""

import json
import subprocess
import sys
from pathlib import Path

from helpers.procfixture import FakeNode

TESTS = Path(__file__).resolve().parent.parent
LAZY = ["attribution", "records", "runtimes", "trust"]

RUN = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
import conftest  # the shipped code importable as Ansible ships it
import zombie_scan
from ansible.module_utils.testing import patch_module_args
with patch_module_args(json.loads(sys.argv[2])):
    try:
        zombie_scan.main()
    except SystemExit:
        pass
loaded = sorted(name.rsplit(".", 1)[1] for name in sys.modules
                if name.startswith("ansible.module_utils.zombie_cleaner.observe."))
print("\nLOADED " + json.dumps(loaded))
"""


def scan_in_a_fresh_interpreter(node, tmp_path):
    args = dict(proc_root=str(node.proc), state_path=str(tmp_path / "state.json"),
                cgroup_root=str(node.cgroup_root), audit_log_path=str(tmp_path / "audit.log"),
                metrics_textfile_dir=str(tmp_path), **node.runtime_files())
    done = subprocess.run([sys.executable, "-c", RUN, str(TESTS), json.dumps(args)], capture_output=True, text=True,
                          check=True, cwd=str(TESTS))
    result = json.loads(done.stdout.split("\nLOADED ")[0])
    assert not result.get("failed"), result
    return result, json.loads(done.stdout.split("\nLOADED ")[1])


def test_a_node_without_zombies_never_loads_the_attribution(tmp_path):
    node = FakeNode(tmp_path / "node")
    node.add(1, 0, "init")
    node.add(300, 1, "cron")
    result, loaded = scan_in_a_fresh_interpreter(node, tmp_path)
    assert result["summary"]["zombies"] == 0 and result["report"][0].startswith("0 zombies")
    assert not set(LAZY) & set(loaded), loaded


def test_a_node_with_a_zombie_loads_it_and_attributes_the_zombie(tmp_path):
    node = FakeNode(tmp_path / "node")
    node.add(1, 0, "init")
    node.add(300, 1, "cron")
    node.add(301, 300, "mail", state="Z")
    result, loaded = scan_in_a_fresh_interpreter(node, tmp_path)
    assert result["summary"]["host_zombies"] == 1 and "cron[300]" in "\n".join(result["report"])
    assert set(LAZY) <= set(loaded), loaded
