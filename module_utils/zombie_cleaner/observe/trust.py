# -*- coding: utf-8 -*-
# Copyright: zombie-cleaner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the job may believe about a process or a runtime file (DESIGN.md section 8).

A process's name, argv and cgroup names are chosen by whoever started it:
evidence, never proof. Proof is what an unprivileged user cannot forge: the
uid the kernel reports, the user namespace, the file behind /proc/PID/exe,
and files that only root can have written.
"""

from __future__ import annotations

import os
import stat as stat_module

from ansible.module_utils.zombie_cleaner.observe import procfs

# The kernel's initial user namespace always has this inode (PROC_USER_INIT_INO).
INITIAL_USER_NS = "user:[4026531837]"


def root_owned(path, directory=False):
    """None when path is a root-owned file (or directory) that group and others cannot write, and not a
    symlink; otherwise why not."""
    try:
        info = os.lstat(path)
    except OSError as error:
        return "%s: %s" % (path, error.strerror)
    if stat_module.S_ISLNK(info.st_mode):
        return "%s is a symlink" % path
    if directory != stat_module.S_ISDIR(info.st_mode):
        return "%s is not a %s" % (path, "directory" if directory else "regular file")
    if info.st_uid != 0:
        return "%s is owned by uid %d, not root" % (path, info.st_uid)
    if info.st_mode & 0o022:
        return "%s is writable by group or others (mode %04o)" % (path, info.st_mode & 0o7777)
    return None


def trusted_executable(proc_root, pid):
    """None when /proc/PID/exe is a root-owned regular file that group and others cannot write."""
    path = "%s/%d/exe" % (proc_root, pid)
    try:
        info = os.stat(path)       # follows the magic link to the very inode the process runs
    except OSError as error:
        return "its executable cannot be checked (%s)" % error.strerror
    if not stat_module.S_ISREG(info.st_mode):
        return "its executable is not a regular file"
    if info.st_uid != 0:
        return "its executable is owned by uid %d, not root" % info.st_uid
    if info.st_mode & 0o022:
        return "its executable is writable by group or others (mode %04o)" % (info.st_mode & 0o7777)
    return None


def host_root_problem(proc_root, pid):
    """None when pid runs as uid 0 (every uid field) in the initial user namespace; otherwise why not."""
    uids = procfs.read_status(proc_root, pid).get("Uid", "").split()
    if not uids or any(uid != "0" for uid in uids):
        return "it runs as uid %s, not root" % (uids[0] if uids else "unknown")
    try:
        namespace = os.readlink("%s/%d/ns/user" % (proc_root, pid))
    except OSError as error:
        return "its user namespace cannot be read (%s)" % error.strerror
    if namespace != INITIAL_USER_NS:
        return "it runs in user namespace %s, not the host's" % namespace
    return None


def runtime_process_problem(proc_root, pid):
    """None when pid may be believed to be a container runtime process (shim, conmon, runc).

    Root in a container without a user namespace passes the uid and owner checks with a binary of its own
    image: the binary must also be the host's own file at the path it was started from."""
    problem = host_root_problem(proc_root, pid) or trusted_executable(proc_root, pid)
    if problem is None and not host_binary(proc_root, pid):
        problem = "its executable is not the host's file at that path (a binary of a container's own root?)"
    return problem


def host_binary(proc_root, pid):
    """True when pid runs a file of the host's own filesystem (not one inside a container's root):
    the path /proc/PID/exe names, resolved here, is the same inode the process runs."""
    path = "%s/%d/exe" % (proc_root, pid)
    try:
        running = os.stat(path)
        target = os.readlink(path)
        here = os.stat(target)
    except OSError:
        return False
    return (running.st_dev, running.st_ino) == (here.st_dev, here.st_ino)


def read_pid_file(path):
    """(pid, None) from a root-owned pid file, or (None, why it cannot be believed)."""
    problem = root_owned(path)
    if problem:
        return None, problem
    try:
        return int(procfs.read_text(path).strip()), None
    except (OSError, ValueError) as error:
        return None, "%s: %s" % (path, error)
