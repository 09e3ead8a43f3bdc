"""The two images real test pods need, built here since no registry is reachable, and imported into
containerd's k8s.io namespace (the CRI plugin's) with `ctr images import`.

- The sandbox image, under the exact `sandbox_image` name of the tests' containerd configuration
  (`containerd -c scripts/containerd-test.toml config dump`): the CRI plugin starts every pod's sandbox
  from it and never pulls what it already has. Its one file is a static pause (pause.c) that reaps on
  SIGCHLD as the kubelet's pause does.
- A busybox image: busybox-static with its applet links (the rootfs of helpers.containers.build_rootfs).

Each is an OCI image layout in a tar (oci-layout, index.json, blobs/sha256/: one uncompressed layer tar,
the image config and the manifest), written with tarfile and hashlib alone. Layers are reproducible
(sorted entries, mtime 0, root-owned), so a rebuild has the same digests.
"""

import hashlib
import io
import json
import os
import platform
import shutil
import subprocess
import tarfile
import tempfile
import tomllib

from helpers import containers

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
CONTAINERD_CONFIG = os.path.join(ROOT, "scripts", "containerd-test.toml")
PAUSE_SOURCE = os.path.join(HERE, "pause.c")
IMAGES = os.path.join(containers.WORK, "cri-images")
BUSYBOX_IMAGE = "localhost/zombie-cleaner-test/busybox:latest"
CRI_NAMESPACE = "k8s.io"

_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le", "s390x": "s390x"}
MEDIA_LAYER = "application/vnd.oci.image.layer.v1.tar"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def sandbox_image_name(config=CONTAINERD_CONFIG):
    """`sandbox_image` of the CRI plugin as containerd itself reads the tests' configuration."""
    dump = subprocess.run(["containerd", "-c", config, "config", "dump"], check=True, capture_output=True,
                          text=True, timeout=60).stdout
    return tomllib.loads(dump)["plugins"]["io.containerd.grpc.v1.cri"]["sandbox_image"]


def build_pause():
    """The static pause binary, cached by the hash of its source."""
    with open(PAUSE_SOURCE, "rb") as handle:
        key = hashlib.sha256(handle.read()).hexdigest()[:16]
    binary = os.path.join(IMAGES, "pause-" + key)
    if not os.path.exists(binary):
        os.makedirs(IMAGES, exist_ok=True)
        staging = binary + ".%d.new" % os.getpid()
        subprocess.run(["gcc", "-static", "-Os", "-s", "-Wall", "-Wextra", "-Werror", "-o", staging, PAUSE_SOURCE],
                       check=True, capture_output=True, text=True, timeout=120)
        os.rename(staging, binary)
    return binary


def _reset(info):
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    info.mtime = 0
    return info


def layer_tar(entries):
    """An uncompressed layer: entries are (path in the image, file on the host, or None for a directory)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for arcname, source in entries:
            if source is None:
                info = _reset(tarfile.TarInfo(arcname))
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                tar.add(source, arcname=arcname, recursive=True, filter=_reset)
    return out.getvalue()


def oci_archive(path, name, layer, config):
    """Write an OCI image layout tar at path: one layer, the image config, the manifest and an index naming
    the image (io.containerd.image.name, which `ctr images import` uses as the full name)."""
    arch = _ARCH.get(platform.machine(), platform.machine())
    blobs = {}

    def blob(data):
        digest = hashlib.sha256(data).hexdigest()
        blobs[digest] = data
        return {"digest": "sha256:" + digest, "size": len(data)}

    image_config = {"architecture": arch, "os": "linux", "config": config,
                    "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(layer).hexdigest()]},
                    "history": [{"created_by": "zombie-cleaner tests/helpers/cri/images.py"}]}
    manifest = {"schemaVersion": 2, "mediaType": MEDIA_MANIFEST,
                "config": dict(blob(json.dumps(image_config, sort_keys=True).encode()), mediaType=MEDIA_CONFIG),
                "layers": [dict(blob(layer), mediaType=MEDIA_LAYER)]}
    manifest_descriptor = dict(blob(json.dumps(manifest, sort_keys=True).encode()), mediaType=MEDIA_MANIFEST)
    manifest_descriptor["platform"] = {"architecture": arch, "os": "linux"}
    manifest_descriptor["annotations"] = {"io.containerd.image.name": name,
                                          "org.opencontainers.image.ref.name": name.rsplit(":", 1)[-1]}
    index = {"schemaVersion": 2, "manifests": [manifest_descriptor]}

    def add(tar, arcname, data):
        info = _reset(tarfile.TarInfo(arcname))
        info.size, info.mode = len(data), 0o644
        tar.addfile(info, io.BytesIO(data))

    staging = path + ".%d.new" % os.getpid()
    with tarfile.open(staging, "w") as tar:
        add(tar, "oci-layout", json.dumps({"imageLayoutVersion": "1.0.0"}).encode())
        add(tar, "index.json", json.dumps(index, sort_keys=True).encode())
        for digest, data in sorted(blobs.items()):
            add(tar, "blobs/sha256/" + digest, data)
    os.rename(staging, path)
    return manifest_descriptor["digest"]


def build_images(sandbox_image):
    """{image name: OCI archive path} for the sandbox image and busybox."""
    os.makedirs(IMAGES, exist_ok=True)
    pause = build_pause()
    with tempfile.TemporaryDirectory(dir=IMAGES) as scratch:
        staged = os.path.join(scratch, "pause")
        shutil.copy(pause, staged)
        os.chmod(staged, 0o755)
        pause_layer = layer_tar([("pause", staged)])
    rootfs = containers.build_rootfs()
    busybox_layer = layer_tar([(name, os.path.join(rootfs, name)) for name in sorted(os.listdir(rootfs))])
    archives = {}
    for name, layer, config in (
            (sandbox_image, pause_layer, {"Entrypoint": ["/pause"], "User": "65535:65535"}),
            (BUSYBOX_IMAGE, busybox_layer, {"Env": ["PATH=/bin"], "Cmd": ["/bin/sh"]})):
        path = os.path.join(IMAGES, name.replace("/", "_").replace(":", "_") + ".oci.tar")
        oci_archive(path, name, layer, config)
        archives[name] = path
    return archives


def import_images(address, archives):
    """`ctr images import` of each archive into the k8s.io namespace (unpacked for the default snapshotter,
    so the CRI plugin finds the images as it finds pulled ones)."""
    for name, path in archives.items():
        done = subprocess.run(["ctr", "--address", address, "-n", CRI_NAMESPACE, "images", "import", path],
                              capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            raise RuntimeError("ctr images import %s (%s) failed: %s" % (path, name, done.stderr.strip()))
    listed = subprocess.run(["ctr", "--address", address, "-n", CRI_NAMESPACE, "images", "ls", "-q"],
                            check=True, capture_output=True, text=True, timeout=60).stdout.split()
    missing = sorted(set(archives) - set(listed))
    if missing:
        raise RuntimeError("after the import, containerd at %s does not list %s" % (address, ", ".join(missing)))
