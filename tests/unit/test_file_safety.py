"""What the job writes as root: never through a planted link, only in directories that only root can change.

Each test plants what an attacker (or an accident) would, then checks the victim is untouched and the
job says what it refused and why.
"""

import importlib.util
import json
import os
import stat
from pathlib import Path

import pytest

from ansible.module_utils.zombie_cleaner.observe import scan
from ansible.module_utils.zombie_cleaner.record import audit, metrics, state
from helpers.procfixture import FakeNode

BOOT = "11111111-2222-3333-4444-555555555555"
VICTIM_TEXT = "root:x:0:0:do not touch\n"
NOBODY = 65534


@pytest.fixture
def victim(tmp_path):
    path = tmp_path / "victim"
    path.write_text(VICTIM_TEXT)
    return path


def untouched(path):
    return path.read_text() == VICTIM_TEXT


def options(tmp_path, **extra):
    node = FakeNode(tmp_path / "node")
    node.add(1, 0, "init")
    node.add(300, 1, "cron")
    node.add(301, 300, "mail", state="Z")
    settings = dict(proc_root=str(node.proc), state_path=str(tmp_path / "state" / "state.json"),
                    cgroup_root=str(node.cgroup_root), runtime_files=node.runtime_files())
    settings.update(extra)
    return scan.ScanOptions(**settings)


# The lock

def test_a_link_planted_as_the_lock_file_is_not_followed(tmp_path, victim):
    (tmp_path / "state").mkdir(mode=0o700)
    os.symlink(victim, tmp_path / "state" / "state.json.lock")
    with pytest.raises(state.StateError, match="state.json.lock is a symbolic link: not followed"):
        scan.run_scan(options(tmp_path))
    assert untouched(victim)
    assert not (tmp_path / "state" / "state.json").exists()


def test_a_hard_link_planted_as_the_lock_file_is_not_truncated(tmp_path, victim):
    (tmp_path / "state").mkdir(mode=0o700)
    os.link(victim, tmp_path / "state" / "state.json.lock")
    with pytest.raises(state.StateError, match=r"is not a plain file of its own \(2 links\): remove it"):
        with state.Lock(str(tmp_path / "state" / "state.json"), 1):
            pass
    assert untouched(victim)


# The state file

def test_a_state_file_that_is_a_link_is_neither_trusted_nor_followed(tmp_path):
    # A link to a file someone else wrote: its forged sightings and counters must not be believed.
    forged = tmp_path / "forged.json"
    forged.write_text(json.dumps(dict(state.empty_state(BOOT), counters={"containers_cleaned_total": 99})))
    (tmp_path / "state").mkdir(mode=0o700)
    path = tmp_path / "state" / "state.json"
    os.symlink(forged, path)
    loaded, warnings = state.load(str(path), BOOT, now=1234)
    assert loaded["counters"] == {}
    assert warnings == ["state file %s was a symbolic link (not followed); kept it as %s.corrupt-1234 and "
                        "started fresh" % (path, path)]
    assert os.readlink(str(path) + ".corrupt-1234") == str(forged)     # the link itself, kept aside
    assert json.loads(forged.read_text())["counters"] == {"containers_cleaned_total": 99}


def test_two_corrupt_files_in_the_same_second_are_both_kept(tmp_path):
    path = tmp_path / "state.json"
    for content in (b"{first", b"{second"):
        path.write_bytes(content)
        state.load(str(path), BOOT, now=1234)
    assert (tmp_path / "state.json.corrupt-1234").read_bytes() == b"{first"
    assert (tmp_path / "state.json.corrupt-1234.1").read_bytes() == b"{second"


# The state directory

@pytest.mark.parametrize("mode", [0o770, 0o707, 0o1777], ids=oct)
def test_a_state_directory_others_can_write_to_is_refused_and_left_as_it_is(tmp_path, mode):
    directory = tmp_path / "state"
    directory.mkdir()
    directory.chmod(mode)
    message = ("state_path='%s/state.json': directory %s is writable by group or others (owner uid 0, mode %04o): "
               "chmod go-w %s, or choose another directory" % (directory, directory, mode, directory))
    for check_mode in (False, True):
        with pytest.raises(state.StateError) as refused:
            scan.run_scan(options(tmp_path), check_mode=check_mode)
        assert str(refused.value) == message
    assert os.listdir(directory) == [] and stat.S_IMODE(directory.stat().st_mode) == mode


def test_a_state_directory_of_someone_else_is_refused(tmp_path):
    directory = tmp_path / "state"
    directory.mkdir(mode=0o700)
    os.chown(directory, NOBODY, NOBODY)
    with pytest.raises(state.StateError, match=r"directory %s belongs to someone else \(owner uid %d, mode 0700\), "
                                               r"not to uid 0 that runs the job: chown 0 %s"
                                               % (directory, NOBODY, directory)):
        scan.run_scan(options(tmp_path))
    assert os.listdir(directory) == []


def test_a_state_directory_that_is_a_link_is_refused(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    os.symlink(elsewhere, tmp_path / "state")
    with pytest.raises(state.StateError, match="is a symbolic link: the job writes only into a real directory"):
        scan.run_scan(options(tmp_path))
    assert os.listdir(elsewhere) == []


def test_directories_the_job_creates_are_0700_whatever_the_umask(tmp_path):
    previous = os.umask(0)
    try:
        scan.run_scan(options(tmp_path, state_path=str(tmp_path / "a" / "b" / "state.json"),
                              audit_log=audit.AuditLog(str(tmp_path / "log" / "x" / "audit.log"))))
    finally:
        os.umask(previous)
    for directory in ("a", "a/b", "log", "log/x"):
        assert stat.S_IMODE((tmp_path / directory).stat().st_mode) == 0o700, directory


# The audit log

def test_a_link_planted_as_the_audit_log_is_not_followed(tmp_path, victim):
    (tmp_path / "log").mkdir(mode=0o700)
    os.symlink(victim, tmp_path / "log" / "audit.log")
    log = audit.AuditLog(str(tmp_path / "log" / "audit.log"))
    with pytest.raises(OSError, match="audit_log_path='%s/log/audit.log' is a symbolic link: not followed" % tmp_path):
        log.write([audit.line("info", "zombie sighted")])
    assert untouched(victim)
    # A scan says so and goes on: the sighting state is still kept.
    result = scan.run_scan(options(tmp_path, audit_log=log))
    assert [text for text in result["warnings"] if "symbolic link" in text] == [
        "audit log %s/log/audit.log not written: audit_log_path='%s/log/audit.log' is a symbolic link: not "
        "followed (remove it; the job creates the log itself)" % (tmp_path, tmp_path)]
    assert untouched(victim) and (tmp_path / "state" / "state.json").exists()


def test_rotation_never_follows_a_link(tmp_path, victim):
    # The log directory is a link to someone else's directory that has an audit.log of its own, due
    # for rotation: following the link would delete it (backups=0) and write a new file there.
    other = tmp_path / "other-app"
    other.mkdir(mode=0o700)
    (other / "audit.log").write_text("x" * 5000)
    os.symlink(other, tmp_path / "linked")
    log = audit.AuditLog(str(tmp_path / "linked" / "audit.log"), max_bytes=4096, backups=0)
    with pytest.raises(OSError, match="is a symbolic link: the job writes only into a real directory"):
        log.write([audit.line("info", "zombie sighted")])
    assert os.listdir(other) == ["audit.log"] and (other / "audit.log").read_text() == "x" * 5000
    # A link planted as a rotated file is moved on as the link itself.
    directory = tmp_path / "log"
    directory.mkdir(mode=0o700)
    (directory / "audit.log").write_text("y" * 4000)
    os.symlink(victim, directory / "audit.log.1")
    log = audit.AuditLog(str(directory / "audit.log"), max_bytes=4096, backups=2)
    log.write([audit.line("info", "zombie %d" % n) for n in range(3)])
    assert os.readlink(directory / "audit.log.2") == str(victim)          # moved on, as a link
    assert (directory / "audit.log.1").read_text() == "y" * 4000
    assert "zombie 2" in (directory / "audit.log").read_text() and untouched(victim)


def test_an_audit_directory_others_can_write_to_is_refused_and_left_as_it_is(tmp_path):
    directory = tmp_path / "log"
    directory.mkdir()
    directory.chmod(0o775)
    log = audit.AuditLog(str(directory / "audit.log"))
    result = scan.run_scan(options(tmp_path, audit_log=log))
    assert ("audit log %s/audit.log not written: audit_log_path='%s/audit.log': directory %s is writable by group "
            "or others (owner uid 0, mode 0775): chmod go-w %s" % (directory, directory, directory, directory)
            in "\n".join(result["warnings"]))
    assert os.listdir(directory) == [] and stat.S_IMODE(directory.stat().st_mode) == 0o775


# The metrics textfile directory: node_exporter's, never changed by the job

def test_metrics_go_to_a_root_owned_0755_textfile_directory_without_a_word(tmp_path, victim):
    textfiles = tmp_path / "node-exporter"
    textfiles.mkdir()
    textfiles.chmod(0o755)
    result = scan.run_scan(options(tmp_path, metrics_textfile_dir=str(textfiles)))
    assert result["metrics_path"] == str(textfiles / "zombie_cleaner.prom")
    assert [text for text in result["warnings"] if "metrics" in text] == []
    # One that others can write to still gets the metrics (written safely), with a warning, and keeps its mode.
    textfiles.chmod(0o1777)
    result = scan.run_scan(options(tmp_path, metrics_textfile_dir=str(textfiles)))
    assert result["metrics_path"] == str(textfiles / "zombie_cleaner.prom")
    assert [text for text in result["warnings"] if "metrics" in text] == [
        "metrics_textfile_dir=%r is writable by group or others (mode 1777): they can replace or forge "
        "zombie_cleaner.prom; chmod go-w %s" % (str(textfiles), textfiles)]
    assert stat.S_IMODE(textfiles.stat().st_mode) == 0o1777
    # A link planted as the textfile is replaced, not followed.
    os.unlink(textfiles / metrics.TEXTFILE_NAME)
    os.symlink(victim, textfiles / metrics.TEXTFILE_NAME)
    assert scan.run_scan(options(tmp_path, metrics_textfile_dir=str(textfiles)))["metrics_path"]
    assert not os.path.islink(textfiles / metrics.TEXTFILE_NAME) and untouched(victim)


# The controller's copy of each scan result

def load_action_plugin():
    path = Path(__file__).resolve().parents[2] / "plugins" / "action" / "zombie_scan.py"
    spec = importlib.util.spec_from_file_location("zombie_scan_action", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_link_planted_at_the_results_temp_name_is_not_followed(tmp_path, victim):
    plugin = load_action_plugin()
    results = tmp_path / "results"
    results.mkdir(mode=0o700)
    os.symlink(victim, results / "node1.scan.json.partial")
    path = plugin.keep_result(str(results), "node1", {"zombie_count": 2})
    assert json.loads(Path(path).read_text()) == {"zombie_count": 2} and untouched(victim)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
