# -*- coding: utf-8 -*-
# Copyright: zombie-cleaner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Files the job writes as root: replaced whole, never through a link, in directories only root can change.

A reader sees the old content or the new, never half of it. A link planted where the job writes (the lock,
the audit log, a copy kept aside) is never followed: as root, following it would truncate or append to any
file on the node.
"""

from __future__ import annotations

import errno
import os
import stat
import tempfile

# Every file the job opens in its directories: a link there is refused, and no child inherits the descriptor.
NOFOLLOW = os.O_NOFOLLOW | os.O_CLOEXEC


class UnsafePath(OSError):
    """A path the job will not write through: a link, someone else's directory, one others can write to."""

    def __init__(self, message):
        super().__init__(errno.EPERM, message)
        self.message = message

    def __str__(self):
        return self.message


def open_nofollow(path, flags, mode=0o600):
    """os.open with O_NOFOLLOW | O_CLOEXEC; a symbolic link is UnsafePath naming the path."""
    try:
        return os.open(path, flags | NOFOLLOW, mode)
    except OSError as error:
        # With O_DIRECTORY, a link gives ENOTDIR rather than ELOOP.
        if error.errno == errno.ELOOP or (error.errno == errno.ENOTDIR and os.path.islink(path)):
            raise UnsafePath("%s is a symbolic link: not followed (remove it; the job creates the file itself)"
                             % path)
        raise


def _create_missing(directory):
    """Create directory and its missing parents, each 0700. Returns those created, outermost first."""
    missing = []
    path = os.path.abspath(directory)
    while not os.path.lexists(path):
        missing.append(path)
        path = os.path.dirname(path)
    created = []
    for path in reversed(missing):
        try:
            os.mkdir(path, 0o700)
            created.append(path)
        except FileExistsError:
            pass          # made meanwhile by someone else: checked like any existing directory
    return created


def _describe(info):
    return "owner uid %d, mode %04o" % (info.st_uid, stat.S_IMODE(info.st_mode))


def secure_directory(directory, parameter, create=True):
    """Make sure directory is one that only the job's user can change, creating it (0700) if create.

    It must be a real directory (not a link), owned by the user running the job (root) and not writable
    by group or others: anyone else who could write there could plant links or files the job then
    trusts. A directory the job created is given mode 0700 whatever the umask; one that was already
    there is never changed (it may be /tmp, or someone else's): it is refused with the fix to apply.
    Returns False when create is False and the directory does not exist, True otherwise."""
    directory = os.path.abspath(directory)
    created = []
    if create:
        try:
            created = _create_missing(directory)
        except OSError as error:
            raise UnsafePath("%s: cannot create directory %s: %s" % (parameter, directory, error))
    try:
        descriptor = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | NOFOLLOW)
    except FileNotFoundError:
        if create:
            raise
        return False
    except OSError as error:
        # With O_DIRECTORY, a link gives ENOTDIR rather than ELOOP.
        if error.errno == errno.ELOOP or (error.errno == errno.ENOTDIR and os.path.islink(directory)):
            raise UnsafePath("%s: %s is a symbolic link: the job writes only into a real directory that "
                             "root owns; point %s at the directory itself" % (parameter, directory, parameter))
        if error.errno == errno.ENOTDIR:
            if create:
                raise UnsafePath("%s: cannot create directory %s: a file is in the way" % (parameter, directory))
            raise UnsafePath("%s: %s is not a directory" % (parameter, directory))
        raise
    try:
        info = os.fstat(descriptor)
        if info.st_uid != os.geteuid():
            raise UnsafePath("%s: directory %s belongs to someone else (%s), not to uid %d that runs the job: "
                             "chown %d %s, or choose another directory"
                             % (parameter, directory, _describe(info), os.geteuid(), os.geteuid(), directory))
        if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            if directory not in created:
                raise UnsafePath("%s: directory %s is writable by group or others (%s): chmod go-w %s, or "
                                 "choose another directory" % (parameter, directory, _describe(info), directory))
            os.fchmod(descriptor, 0o700)
    finally:
        os.close(descriptor)
    return True


def keep_aside(path, prefix, move=True):
    """Move path (or, with move=False, copy it) to the name prefix, or prefix.1, prefix.2 ... whichever is
    free: an earlier copy is never overwritten. A link is kept as the link itself. Returns the name used."""
    index = 0
    while True:
        aside = prefix if index == 0 else "%s.%d" % (prefix, index)
        try:
            # A hard link fails if the name is taken (a rename would replace it). As a copy it is enough:
            # the file is only ever replaced by a rename, never written in place.
            os.link(path, aside, follow_symlinks=False)
        except FileExistsError:
            index += 1
            continue
        except OSError:
            # No hard links on this filesystem: once the name is seen to be free (the caller holds the
            # lock, and only root can write in the directory), a rename or a copy.
            if os.path.lexists(aside):
                index += 1
                continue
            if move:
                os.rename(path, aside)
            else:
                _copy(path, aside)
            return aside
        if move:
            os.unlink(path)
        return aside


def _copy(path, target):
    source = open_nofollow(path, os.O_RDONLY)
    with os.fdopen(source, "rb") as reader:
        data = reader.read()
    with os.fdopen(open_nofollow(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as writer:
        writer.write(data)


def write(path, text, mode=0o600, durable=True):
    """Temp file in the same directory (its name starts with '.', ends with '.tmp': no *.prom or *.json
    reader picks it up), fsync, rename over path, then fsync the directory when durable.

    The temp file is created with O_EXCL | O_NOFOLLOW under a random name (mkstemp), and rename replaces
    a link at path rather than writing through it."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, temp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=directory)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        try:
            os.unlink(temp)
        except OSError:
            pass
        raise
    if durable:
        dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    return path
