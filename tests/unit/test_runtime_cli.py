"""Runtime command lines and their bounds, with real stand-in CLIs: scripts that record their argv.

The bounds are tested with real processes too: a CLI that hangs, and one whose helper calls setsid and
keeps the pipes open, which once turned a 1 s bound into as long as the helper lived.
"""

import importlib.util
import json
import multiprocessing
import os
import signal
import stat
import sys
import time
from pathlib import Path

import pytest
import yaml

from ansible.module_utils.zombie_cleaner import config
from ansible.module_utils.zombie_cleaner.cure import runtime_cli

CID = "c" * 64
FAR = 3600.0   # a deadline that never matters

# A stand-in for every runtime CLI: appends [name, *argv] to $ZC_CALLS, answers what the adapters read.
STAND_IN = r'''#!%(python)s
import json, os, sys
name, args = os.path.basename(sys.argv[0]), sys.argv[1:]
with open(%(calls)r, "a") as log:
    log.write(json.dumps([name] + args) + "\n")
if args[:1] == ["inspect"]:
    print("true")
elif args[-2:] == ["task", "ls"]:
    print("TASK    PID    STATUS")       # no task: the container has stopped
elif args[:1] in (["--version"], ["version"]):
    print("%%s version 1.0" %% name)
'''


@pytest.fixture
def clis(tmp_path):
    """Stand-ins named docker, podman, ctr and crictl in tmp_path/bin; calls() lists what ran."""
    directory = tmp_path / "bin"
    directory.mkdir()
    calls = tmp_path / "calls.jsonl"
    for name in ("docker", "podman", "ctr", "crictl"):
        path = directory / name
        path.write_text(STAND_IN % {"python": sys.executable, "calls": str(calls)})
        path.chmod(0o755)

    class Clis:
        bin = directory

        @staticmethod
        def binaries(without=()):
            return {name: str(directory / name) if name not in without else str(directory / ("absent-" + name))
                    for name in ("docker", "podman", "ctr", "crictl")}

        @staticmethod
        def calls():
            if not calls.exists():
                return []
            return [json.loads(line) for line in calls.read_text().splitlines()]
    return Clis


def record(runtime, **extra):
    return dict({"container_id": CID, "runtime": runtime}, **extra)


PLAIN_CTR = record("containerd", containerd_namespace="default")
CRI_CTR = record("containerd", containerd_namespace="k8s.io", pod="web-1", namespace="shop")

# (case, record, binaries left out, method, expected argv of every command run, in order)
TABLE = [
    ("docker restart", record("docker"), (), "graceful_restart",
     [["docker", "restart", "-t", "10", CID]]),
    ("docker start", record("docker"), (), "start_again", [["docker", "start", CID]]),
    ("docker running", record("docker"), (), "running",
     [["docker", "inspect", "-f", "{{.State.Running}}", CID]]),
    ("podman restart", record("podman"), (), "graceful_restart",
     [["podman", "restart", "-t", "10", CID]]),
    ("podman start", record("podman"), (), "start_again", [["podman", "start", CID]]),
    ("plain containerd: SIGTERM, wait for the task to stop, then delete and start it",
     PLAIN_CTR, (), "graceful_restart",
     [["ctr", "-n", "default", "task", "kill", "-s", "SIGTERM", CID], ["ctr", "-n", "default", "task", "ls"],
      ["ctr", "-n", "default", "task", "delete", CID], ["ctr", "-n", "default", "task", "start", "-d", CID]]),
    ("plain containerd start", PLAIN_CTR, (), "start_again",
     [["ctr", "-n", "default", "task", "delete", CID], ["ctr", "-n", "default", "task", "start", "-d", CID]]),
    ("plain containerd running", PLAIN_CTR, (), "running", [["ctr", "-n", "default", "task", "ls"]]),
    # --timeout always: without it crictl stop is an immediate SIGKILL on containerd.
    ("CRI container: crictl stop, the kubelet starts a new one", CRI_CTR, (), "graceful_restart",
     [["crictl", "stop", "--timeout", "10", CID]]),
    ("CRI container without crictl: ctr kill only, never a ctr start behind the kubelet", CRI_CTR, ("crictl",),
     "graceful_restart",
     [["ctr", "-n", "k8s.io", "task", "kill", "-s", "SIGTERM", CID], ["ctr", "-n", "k8s.io", "task", "ls"]]),
    ("CRI container start: the kubelet's job", CRI_CTR, (), "start_again", []),
    ("cri-o stop", record("cri-o"), (), "graceful_restart", [["crictl", "stop", "--timeout", "10", CID]]),
    ("cri-o start: the kubelet's job", record("cri-o"), (), "start_again", []),
]


@pytest.mark.parametrize("case, item, without, method, expected", TABLE, ids=[row[0] for row in TABLE])
def test_command_lines(clis, case, item, without, method, expected):
    runtime = runtime_cli.for_record(item, clis.binaries(without))
    getattr(runtime, method)(item, 30, deadline=time.monotonic() + FAR)
    assert [[os.path.basename(argv[0])] + argv[1:] for argv in clis.calls()] == expected


@pytest.mark.parametrize("case, item, without, method, expected", [row for row in TABLE if row[4]],
                         ids=[row[0] for row in TABLE if row[4]])
def test_nothing_runs_past_the_overall_deadline(clis, case, item, without, method, expected):
    runtime = runtime_cli.for_record(item, clis.binaries(without))
    results = getattr(runtime, method)(item, 30, deadline=time.monotonic() - 1)
    assert clis.calls() == []
    if isinstance(results, list):
        assert all(result.timed_out and not result.ok for result in results)
        assert "deadline has passed" in results[0].describe()


def test_the_default_names_are_found_on_path_and_versions_read(clis, monkeypatch):
    monkeypatch.setenv("PATH", "%s:%s" % (clis.bin, os.environ["PATH"]))
    deadline = time.monotonic() + FAR
    assert runtime_cli.for_record(record("docker")).version(deadline=deadline) == "docker version 1.0"
    assert runtime_cli.for_record(record("cri-o")).version(deadline=deadline) == "crictl version 1.0"
    assert [call[:2] for call in clis.calls()] == [["docker", "--version"], ["crictl", "version"]]


def script(tmp_path, name, body):
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


@pytest.fixture
def helpers(tmp_path):
    """Pid files of the setsid'd helpers a stand-in leaves behind; they are killed after the test."""
    directory = tmp_path / "helpers"
    directory.mkdir()
    yield directory
    for pid_file in directory.iterdir():
        try:
            os.kill(int(pid_file.read_text()), signal.SIGKILL)
        except (ValueError, ProcessLookupError):
            pass


def setsid_helper(helpers, seconds):
    """Shell lines that start a helper in a session of its own, holding stdout and stderr."""
    return "setsid sh -c 'echo $$ > %s/pid; exec sleep %d' &\n" % (helpers, seconds)


def test_a_hung_cli_whose_setsid_helper_holds_the_pipes_returns_within_the_bound(tmp_path, helpers):
    cli = script(tmp_path, "hung-cli", "echo started\n" + setsid_helper(helpers, 20) + "exec sleep 20\n")
    started = time.monotonic()
    result = runtime_cli.run_bounded([cli], 1.0)
    elapsed = time.monotonic() - started
    assert result.timed_out and result.returncode is None and not result.ok
    assert elapsed < 2.5, "a 1 s bound took %.1fs" % elapsed
    assert result.stdout == "started\n"            # what it wrote before the kill is kept
    assert "timed out after" in result.describe()
    assert (helpers / "pid").exists()              # the helper really was there, holding the pipes


def test_a_cli_that_is_done_but_left_a_helper_holding_its_pipes_is_not_waited_for(tmp_path, helpers):
    cli = script(tmp_path, "quick-cli", setsid_helper(helpers, 20) + "echo restarted\nexit 0\n")
    started = time.monotonic()
    result = runtime_cli.run_bounded([cli], 10.0)
    assert time.monotonic() - started < 2.5
    assert result.ok and result.returncode == 0 and not result.timed_out
    assert result.stdout == "restarted\n"


def test_the_overall_deadline_cuts_a_longer_timeout(tmp_path):
    cli = script(tmp_path, "slow-cli", "exec sleep 20\n")
    started = time.monotonic()
    result = runtime_cli.run_bounded([cli], 30.0, deadline=started + 1.0)
    assert result.timed_out and time.monotonic() - started < 2.5


def test_output_that_is_not_utf8_is_kept_readable(tmp_path):
    cli = script(tmp_path, "bytes-cli", "printf 'id \\377\\n'; printf 'warn \\376' >&2; exit 3\n")
    result = runtime_cli.run_bounded([cli], 5.0)
    assert (result.returncode, result.stdout, result.stderr) == (3, "id \ufffd\n", "warn \ufffd")
    assert result.describe() == "%s exited 3: warn \ufffd" % cli


# The role's task time limits: a node that hangs fails its task instead of stalling every node's run.

ROOT = Path(__file__).resolve().parents[2]
MODULES = ("zombie_scan", "zombie_remediate", "zombie_fleet_report", "ansible.builtin.slurp")


def test_every_module_task_of_the_role_has_a_time_limit():
    tasks = [task for path in sorted((ROOT / "roles" / "zombie_cleaner" / "tasks").glob("*.yml"))
             for task in yaml.safe_load(path.read_text()) or []]
    module_tasks = [task for task in tasks if any(name in task for name in MODULES)]
    assert len(module_tasks) == 4
    assert {task["name"]: task.get("timeout") for task in module_tasks} == {
        # Limited by its action plugin (plugins/action/zombie_scan.py, time_limit), with the same scan time:
        # test_a_scan_that_hangs_fails_at_its_task_time_limit below.
        "Scan /proc, attribute zombies to containers, count sightings": None,
        "Cure confirmed containers, least disruptive rung first": "{{ _zombie_cleaner_module_timeouts.remediate }}",
        "Read this node's zombie-cleaner state": "{{ _zombie_cleaner_module_timeouts.scan }}",
        "Render the fleet report on the controller": "{{ _zombie_cleaner_module_timeouts.scan }}",
    }


DEFAULTS = {"process_timeout": "10s", "container_timeout": "30s", "replacement_wait": "30s",
            "max_remediations_per_run": 5, "max_concurrent_containers": 10}


@pytest.mark.parametrize("settings, override, expected", [
    # scan: 2 x 10 + 60; remediation: (10 + 5 x 30 + 4 x 5 + 30) + 5 x 10 + 2 x 10 + 60
    ({}, "", {"scan": 80, "remediate": 340}),
    # 12 containers, 5 at once: 3 rounds
    ({"max_remediations_per_run": "12", "max_concurrent_containers": "5"}, None,
     {"scan": 80, "remediate": 3 * 210 + 12 * 10 + 20 + 60}),
    ({"container_timeout": "1s", "process_timeout": "250ms", "replacement_wait": "1s"}, "0",
     {"scan": 61, "remediate": 88}),   # the cure waits stay 5 s each
    ({}, "15m", {"scan": 900, "remediate": 900}),
    # A bad setting counts as its largest allowed value: the settings check, not the template, reports it.
    ({"process_timeout": "nan"}, "", {"scan": 2 * 3600 + 60, "remediate": 3600 + 150 + 20 + 30 + 5 * 3600
                                                                          + 2 * 3600 + 60}),
    ({}, "inf", {"scan": 7 * 86400, "remediate": 7 * 86400}),
])
def test_task_time_limits_follow_the_settings(settings, override, expected):
    effective = dict(DEFAULTS, **settings)
    assert config.module_timeouts(effective, override) == expected
    assert load_role_filter()(effective, override) == expected


def load_role_filter():
    path = ROOT / "roles" / "zombie_cleaner" / "filter_plugins" / "zombie_cleaner.py"
    spec = importlib.util.spec_from_file_location("zombie_cleaner_filters", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.FilterModule().filters()["zombie_cleaner_module_timeouts"]


def _hold_lock(path, ready, release):
    from ansible.module_utils.zombie_cleaner.record import state
    with state.Lock(path, 1):
        ready.set()
        release.wait(60)


def test_a_scan_that_hangs_fails_at_its_task_time_limit(tmp_path):
    # Another run holds the lock and process_timeout lets the scan wait 20 s for it: the task's limit
    # (zombie_cleaner_module_timeout 3s) ends it first.
    from helpers.ansible_run import node_paths, playbook
    (tmp_path / "state").mkdir(mode=0o700)
    ready, release = multiprocessing.Event(), multiprocessing.Event()
    holder = multiprocessing.Process(target=_hold_lock, args=(str(tmp_path / "state" / "state.json"), ready, release))
    holder.start()
    try:
        assert ready.wait(10)
        started = time.monotonic()
        result = playbook("playbooks/scan.yml", *node_paths(tmp_path), "-e", "zombie_cleaner_process_timeout=20s",
                          "-e", "zombie_cleaner_module_timeout=3s", check=False,
                          # ansible-playbook beside this Python (the venv's), also when the venv is not on PATH
                          env={"PATH": "%s:%s" % (os.path.dirname(sys.executable), os.environ["PATH"])})
        elapsed = time.monotonic() - started
    finally:
        release.set()
        holder.join(10)
    assert result.returncode != 0 and "the scan timed out after 3 seconds on the node" in result.stdout, \
        result.stdout[-2000:]
    assert elapsed < 15, "the scan task ran %.0fs" % elapsed
