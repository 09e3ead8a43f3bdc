import os

import pytest

from ansible.module_utils.zombie_cleaner.observe import procfs
from helpers.procfixture import FakeNode


@pytest.mark.parametrize("name", ["sleep", "a b", "x) (y", "((", "))", "evil) Z 1 2", ""])
def test_name_between_first_paren_and_last_paren(tmp_path, name):
    node = FakeNode(tmp_path)
    start = node.add(42, 7, name, state="Z")
    entry = procfs.read_stat(str(node.proc), 42)
    assert entry == procfs.ProcStat(42, 7, "Z", name, start)


@pytest.mark.parametrize("data", [b"", b"12 (x", b"12 (x) S", b"abc (x) S 1 " + b"0 " * 20, b"12 x) S 1"])
def test_malformed_stat_is_skipped_not_fatal(data):
    assert procfs.parse_stat(data) is None


def test_scan_skips_non_pid_entries_and_vanished_processes(tmp_path):
    node = FakeNode(tmp_path)
    node.add(1, 0, "init")
    node.add(5, 1, "child", state="Z")
    (node.proc / "self").mkdir()
    (node.proc / "77").mkdir()  # vanished between listdir and open: no stat file
    table = procfs.scan(str(node.proc))
    assert sorted(table) == [1, 5]
    assert table[5].state == "Z"


def test_scan_of_real_proc_sees_this_process_with_its_parent():
    table = procfs.scan("/proc")
    me = table[os.getpid()]
    assert me.ppid == os.getppid()
    assert me.state in "RS"
    with open("/proc/self/stat", "rb") as handle:
        assert me.start_time == int(handle.read().rsplit(b")", 1)[1].split()[19])


def test_cmdline_cgroup_status_of_missing_process_are_empty(tmp_path):
    node = FakeNode(tmp_path)
    assert procfs.read_cmdline(str(node.proc), 999) == []
    assert procfs.read_cgroup(str(node.proc), 999) == []
    assert procfs.read_status(str(node.proc), 999) == {}
    assert procfs.read_boot_id(str(node.proc)) == "11111111-2222-3333-4444-555555555555"


def test_read_small_reads_files_of_any_size(tmp_path):
    from ansible.module_utils.zombie_cleaner.observe import procfs
    for size in (0, 10, 4095, 4096, 4097, 70000):
        path = tmp_path / ("f%d" % size)
        content = bytes(i % 251 for i in range(size))
        path.write_bytes(content)
        assert procfs.read_small(str(path)) == content, size
