"""Python stubs for api.proto, compiled at test time with grpcio-tools into a cache keyed by the proto's hash.

Nothing generated is committed: a changed api.proto, or another grpcio-tools or protobuf, gives a new key
and a fresh compile. The stubs live in a package of their own name (zc_cri_api) so that no other
`api_pb2` on sys.path can be taken for them.
"""

import hashlib
import importlib
import os
import shutil
import subprocess
import sys
import tempfile

PROTO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "api.proto")
CACHE = os.path.join(os.environ.get("ZC_TEST_WORK", "/var/tmp/zombie-cleaner-test"), "cri-stubs")
PACKAGE = "zc_cri_api"

_loaded = None


def _key():
    import google.protobuf
    import grpc_tools
    digest = hashlib.sha256()
    with open(PROTO, "rb") as handle:
        digest.update(handle.read())
    for version in (getattr(grpc_tools, "__version__", ""), google.protobuf.__version__):
        digest.update(b"\0" + str(version).encode())
    return digest.hexdigest()[:20]


def _compile(target):
    """protoc into a temporary directory beside target, then one rename: concurrent sessions never see
    half-written stubs."""
    os.makedirs(CACHE, exist_ok=True)
    work = tempfile.mkdtemp(prefix=".build-", dir=CACHE)
    try:
        source = os.path.join(work, "src", PACKAGE)
        out = os.path.join(work, "out")
        os.makedirs(source)
        os.makedirs(os.path.join(out, PACKAGE))
        shutil.copy(PROTO, os.path.join(source, "api.proto"))
        with open(os.path.join(out, PACKAGE, "__init__.py"), "w"):
            pass
        done = subprocess.run([sys.executable, "-m", "grpc_tools.protoc", "-I", os.path.join(work, "src"),
                               "--python_out", out, "--grpc_python_out", out, PACKAGE + "/api.proto"],
                              capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError("grpc_tools.protoc failed on %s: %s" % (PROTO, done.stderr.strip()))
        try:
            os.rename(out, target)
        except OSError:
            if not os.path.isdir(target):   # another session won the race: use its copy
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)


def load():
    """(api_pb2, api_pb2_grpc) of the current api.proto."""
    global _loaded
    if _loaded is None:
        try:
            import grpc_tools  # noqa: F401  (the error names the missing test requirement)
        except ImportError as error:
            raise RuntimeError("the CRI test client needs grpcio and grpcio-tools (requirements-test.txt): %s"
                               % error)
        target = os.path.join(CACHE, _key())
        if not os.path.isdir(os.path.join(target, PACKAGE)):
            _compile(target)
        if target not in sys.path:
            sys.path.insert(0, target)
        _loaded = (importlib.import_module(PACKAGE + ".api_pb2"), importlib.import_module(PACKAGE + ".api_pb2_grpc"))
    return _loaded
