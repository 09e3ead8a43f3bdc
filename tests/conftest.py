"""Make the shipped code importable exactly as Ansible ships it to a node."""

import os
import sys
from pathlib import Path

import ansible.module_utils

# gRPC (the CRI tests' client) runs fork handlers, on by default in its core, that restart its pollers in every
# forked child of this process: the reaper's tracer and its bounded-read children too, where they abort (SIGABRT)
# on the descriptors those children close (seen: a tracer and a reading child killed by signal 6 in full runs).
# The module on a node never loads gRPC. Read by gRPC when it starts, so set before any test imports it.
os.environ["GRPC_ENABLE_FORK_SUPPORT"] = "false"

ROOT = Path(__file__).resolve().parent.parent
ansible.module_utils.__path__.append(str(ROOT / "module_utils"))
sys.path.insert(0, str(ROOT / "library"))
sys.path.insert(0, str(ROOT / "tests"))


import pytest  # noqa: E402

from ansible.module_utils.zombie_cleaner.cure import child  # noqa: E402


@pytest.fixture(autouse=True)
def children_say_nothing(tmp_path_factory, monkeypatch):
    """The module's own child processes (a reap's tracer, bounded reads) write nothing to stderr: a Python
    fatal error or an exception printed there is a failure, shown here (their stderr is /dev/null on a node)."""
    path = tmp_path_factory.mktemp("child-stderr") / "stderr"
    monkeypatch.setattr(child, "STDERR", str(path))
    yield
    said = path.read_text(errors="replace") if path.exists() else ""
    assert said == "", "a child process of the module wrote to stderr:\n" + said
