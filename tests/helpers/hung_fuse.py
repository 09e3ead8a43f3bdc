"""A FUSE file system of one executable file that stops answering on demand: a hung NFS or FUSE mount.

Mounted with mount(2) on /dev/fuse directly (root, no fusermount needed) and served by a thread of the test:
LOOKUP, GETATTR, OPEN, READ, FLUSH and RELEASE of one file, `name`, with the bytes of `source`. After
hang(), no request is ever answered, as a server that hangs: an open or read of the file blocks in the
kernel until close() aborts the connection (closing /dev/fuse), which fails every request still waiting.
A process exec'd from the file before hang() keeps running from the page cache.
"""

import ctypes
import errno
import os
import select
import stat
import struct
import threading

FUSE_LOOKUP, FUSE_FORGET, FUSE_GETATTR, FUSE_OPEN, FUSE_READ, FUSE_RELEASE, FUSE_FLUSH, FUSE_INIT = (
    1, 2, 3, 14, 15, 18, 25, 26)
FUSE_INTERRUPT, FUSE_BATCH_FORGET, FUSE_DESTROY = 36, 42, 38
NO_REPLY = (FUSE_FORGET, FUSE_INTERRUPT, FUSE_BATCH_FORGET)
ROOT, FILE = 1, 2
_IN_HEADER = struct.Struct("<IIQQIIIHH")            # len opcode unique nodeid uid gid pid total_extlen padding
_OUT_HEADER = struct.Struct("<IiQ")                  # len error unique


def available():
    return os.path.exists("/dev/fuse") and os.geteuid() == 0


class HungFuse:
    def __init__(self, mountpoint, name, source):
        self.mountpoint, self.name = mountpoint, name.encode()
        with open(source, "rb") as handle:
            self.data = handle.read()
        self.hung, self.closing = threading.Event(), threading.Event()
        self.dropped = []                            # opcodes received after hang(), never answered
        self.fd = os.open("/dev/fuse", os.O_RDWR | os.O_CLOEXEC)
        libc = ctypes.CDLL(None, use_errno=True)
        options = "fd=%d,rootmode=40000,user_id=0,group_id=0" % self.fd
        if libc.mount(b"zc-hung-fuse", mountpoint.encode(), b"fuse", 0, options.encode()) != 0:
            code = ctypes.get_errno()
            os.close(self.fd)
            raise OSError(code, "mount fuse on %s: %s" % (mountpoint, os.strerror(code)))
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def path(self):
        return os.path.join(self.mountpoint, self.name.decode())

    def hang(self):
        self.hung.set()

    def close(self):
        """Abort the connection (closing /dev/fuse fails every waiting request), then unmount."""
        self.closing.set()
        self.thread.join(5)                                  # the server polls: it is out of read() now
        try:
            os.close(self.fd)
        except OSError:
            pass
        libc = ctypes.CDLL(None, use_errno=True)
        libc.umount2(self.mountpoint.encode(), 2)          # MNT_DETACH

    def _attr(self, node):
        if node == ROOT:
            mode, size, nlink = stat.S_IFDIR | 0o755, 0, 2
        else:
            mode, size, nlink = stat.S_IFREG | 0o755, len(self.data), 1
        # ino size blocks atime mtime ctime atimensec mtimensec ctimensec mode nlink uid gid rdev blksize flags
        return struct.pack("<QQQQQQIIIIIIIIII", node, size, (size + 511) // 512, 0, 0, 0, 0, 0, 0, mode, nlink,
                           0, 0, 0, 4096, 0)

    def _serve(self):
        poller = select.poll()
        poller.register(self.fd, select.POLLIN)
        while not self.closing.is_set():
            if not poller.poll(50):
                continue
            try:
                request = os.read(self.fd, 1 << 20)
            except OSError as error:
                if error.errno in (errno.EINTR, errno.ENOENT):
                    continue
                return                                       # ENODEV after the unmount, EBADF after close
            length, opcode, unique, node = _IN_HEADER.unpack_from(request)[:4]
            body = request[_IN_HEADER.size:length]
            if opcode in NO_REPLY:
                continue
            if self.hung.is_set() and opcode != FUSE_INIT:
                self.dropped.append(opcode)
                continue
            error, payload = self._answer(opcode, node, body)
            try:
                os.write(self.fd, _OUT_HEADER.pack(_OUT_HEADER.size + len(payload), -error, unique) + payload)
            except OSError:
                pass

    def _answer(self, opcode, node, body):
        if opcode == FUSE_INIT:
            major, minor, readahead, flags = struct.unpack_from("<IIII", body)
            # major minor max_readahead flags max_background congestion max_write time_gran max_pages
            # map_alignment flags2 max_stack_depth unused[6]
            return 0, struct.pack("<IIIIHHIIHHII24x", 7, 31, readahead, 0, 16, 12, 1 << 17, 1, 32, 0, 0, 0)
        if opcode == FUSE_LOOKUP:
            if node != ROOT or body.rstrip(b"\0") != self.name:
                return errno.ENOENT, b""
            return 0, struct.pack("<QQQQII", FILE, 1, 3600, 3600, 0, 0) + self._attr(FILE)
        if opcode == FUSE_GETATTR:
            return 0, struct.pack("<QII", 3600, 0, 0) + self._attr(node)
        if opcode == FUSE_OPEN:
            return 0, struct.pack("<QIi", 1, 0, 0)
        if opcode == FUSE_READ:
            _, offset, size = struct.unpack_from("<QQI", body)
            return 0, self.data[offset:offset + size]
        if opcode in (FUSE_FLUSH, FUSE_RELEASE, FUSE_DESTROY):
            return 0, b""
        return errno.ENOSYS, b""
