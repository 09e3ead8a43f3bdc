"""Memory: peak RSS of a whole zombie_scan module run through Ansible (local connection, the
node's /usr/bin/python3) at 20,000 real zombies. Target: under 64 MiB.

    python bench/memory.py [--zombies 20000]
The node's interpreter is wrapped by a small script that runs it and records its peak RSS
(getrusage of its child), so Ansible's own controller process is not counted.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

from common import ROOT, Zombies, line, verdict

NODE_PYTHON = "/usr/bin/python3"
TARGET_MIB = 64

WRAPPER = """#!{python}
import resource, subprocess, sys
rc = subprocess.call([{node!r}] + sys.argv[1:])
with open({out!r}, "a") as handle:
    handle.write("%d\\n" % resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
sys.exit(rc)
"""


def module_run(directory, wrapper, out):
    inventory = os.path.join(directory, "inventory.yml")
    with open(inventory, "w") as handle:
        handle.write("all:\n  hosts:\n    localhost:\n      ansible_connection: local\n"
                     "      ansible_python_interpreter: %s\n" % wrapper)
    arguments = json.dumps({"state_path": os.path.join(directory, "state.json"), "metrics_textfile_dir": directory,
                            "audit_log_path": os.path.join(directory, "audit.log")})
    result = subprocess.run(["ansible", "-i", inventory, "localhost", "-m", "zombie_scan", "-a", arguments],
                            cwd=ROOT, capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        raise SystemExit("zombie_scan failed:\n%s\n%s" % (result.stdout[-3000:], result.stderr[-3000:]))
    with open(out) as handle:
        return int(handle.read().split()[-1]) / 1024.0          # ru_maxrss is in KiB


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--zombies", type=int, default=20000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory, Zombies(args.zombies):
        out = os.path.join(directory, "rss")
        wrapper = os.path.join(directory, "python3-rss")
        with open(wrapper, "w") as handle:
            handle.write(WRAPPER.format(python=sys.executable, node=NODE_PYTHON, out=out))
        os.chmod(wrapper, 0o755)
        first = module_run(directory, wrapper, out)          # no state yet
        second = module_run(directory, wrapper, out)         # loads and rewrites a state with every zombie
        state_mib = os.path.getsize(os.path.join(directory, "state.json")) / 1048576.0
    line("## Memory: zombie_scan through Ansible at %d zombies (node python %s)" % (args.zombies, NODE_PYTHON))
    line("| run | peak RSS MiB | target | |")
    line("| --- | --- | --- | --- |")
    line("| first (no state) | %.1f | < %d | %s |" % (first, TARGET_MIB, verdict(first, TARGET_MIB)))
    line("| second (state of %.1f MiB) | %.1f | < %d | %s |" % (state_mib, second, TARGET_MIB,
                                                               verdict(second, TARGET_MIB)))
    line()


if __name__ == "__main__":
    main()
