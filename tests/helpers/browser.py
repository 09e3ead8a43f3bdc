"""Headless Chromium (Debian's chromium) for looking at the HTML report as a person would."""

import shutil
import struct
import subprocess
import tempfile
import zlib

BINARY = shutil.which("chromium") or shutil.which("chromium-browser")
# Root needs --no-sandbox; the rest keeps Chromium from calling out to a network this machine does not have.
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--hide-scrollbars"]


def _run(args, timeout=90):
    with tempfile.TemporaryDirectory(prefix="zc-chromium-") as profile:
        return subprocess.run([BINARY] + FLAGS + ["--user-data-dir=" + profile] + args, capture_output=True,
                              timeout=timeout, check=True)


def dump_dom(url):
    """The page's DOM after rendering, as Chromium serialises it."""
    return _run(["--dump-dom", url]).stdout.decode("utf-8")


def screenshot(url, path, width=1280, height=1800):
    _run(["--screenshot=%s" % path, "--window-size=%d,%d" % (width, height), url])
    return path


def png_summary(path):
    """(width, height, distinct byte values in the image data): a blank page has very few."""
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    offset, idat, size = 8, b"", None
    while offset < len(data):
        length, kind = struct.unpack(">I4s", data[offset:offset + 8])
        chunk = data[offset + 8:offset + 8 + length]
        if kind == b"IHDR":
            size = struct.unpack(">II", chunk[:8])
        elif kind == b"IDAT":
            idat += chunk
        offset += 12 + length
    pixels = zlib.decompress(idat)
    return size[0], size[1], len(set(pixels))
