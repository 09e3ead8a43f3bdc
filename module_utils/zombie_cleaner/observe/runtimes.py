# -*- coding: utf-8 -*-
# Copyright: zombie-cleaner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Container runtimes as they look from the node: shim processes and runtime files.

Everything comes from node-local files; no runtime API, no Kubernetes API.
"""

from __future__ import annotations

import json
import os
import re

from ansible.module_utils.zombie_cleaner.observe import procfs, trust

# /proc/PID/stat names are cut to 15 characters: containerd-shim-runc-v2 and
# containerd-shim-kata-v2 both read "containerd-shim", docker-containerd-shim
# reads "docker-containe". Only these names cost a cmdline read.
SHIM_STAT_NAMES = frozenset(("containerd-shim", "docker-containe", "conmon"))

# Names of runtime processes: a zombie whose parent is one of these is a
# runtime fault, not an application that forgot to reap.
RUNTIME_PROCESS_NAMES = frozenset((
    "containerd-shim", "docker-containe", "conmon", "runc", "crun",
    "runc:[0:PARENT]", "runc:[1:CHILD]", "runc:[2:INIT]", "containerd",
    "dockerd", "crio", "podman",
))

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
# CRI-O's conmon -n: k8s_<container>_<pod>_<namespace>_<uid>_<attempt>
_CRIO_NAME = re.compile(r"^k8s_(?P<container>[^_]+)_(?P<pod>[^_]+)_(?P<namespace>[^_]+)_(?P<uid>[^_]+)_(?P<attempt>\d+)$")


def parse_flags(argv):
    """Go-style and GLib-style flags: -x v, --x v, -x=v, --x=v. Returns {name: value}."""
    flags = {}
    positional = []
    index = 1
    while index < len(argv):
        arg = argv[index]
        if arg.startswith("-") and len(arg) > 1:
            name = arg.lstrip("-")
            if "=" in name:
                name, value = name.split("=", 1)
            elif index + 1 < len(argv) and not argv[index + 1].startswith("-"):
                index += 1
                value = argv[index]
            else:
                value = ""
            flags.setdefault(name, value)
        else:
            positional.append(arg)
        index += 1
    return flags, positional


# containerd's rule for namespaces and ids (identifiers.Validate): no "/", no "..". A shim's argv is
# joined to runtime state paths, so anything else could point the lookup outside the state directory.
_IDENTIFIER = re.compile(r"^[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*$")


def valid_identifier(value):
    return bool(value) and len(value) <= 76 and _IDENTIFIER.match(value) is not None


def identify_shim(argv):
    """What kind of shim a command line belongs to, or None if it is not one.

    A process merely named like a shim is not enough: the flags a real shim
    is always started with must be there too, and its namespace and id must be
    identifiers as containerd and conmon make them.
    """
    info = _shim_from_argv(argv)
    if info is None or info.get("vm"):
        return info
    if not valid_identifier(info["id"]) or (info["namespace"] is not None and not valid_identifier(info["namespace"])):
        return None
    return info


def _shim_from_argv(argv):
    if not argv:
        return None
    binary = os.path.basename(argv[0])
    flags, positional = parse_flags(argv)
    if binary.startswith("containerd-shim-kata"):
        return {"kind": "kata", "binary": binary, "vm": True,
                "namespace": flags.get("namespace"), "id": flags.get("id")}
    if binary.startswith("containerd-shim-") and flags.get("id"):
        namespace = flags.get("namespace") or "default"
        return {"kind": "containerd", "binary": binary, "vm": False, "namespace": namespace,
                "id": flags["id"], "runtime": "docker" if namespace == "moby" else "containerd"}
    if binary in ("containerd-shim", "docker-containerd-shim"):
        # shim v1: -namespace <ns> -workdir <state>/<ns>/<id>; very old docker:
        # docker-containerd-shim <id> <bundle> docker-runc
        workdir = flags.get("workdir", "")
        shim_id = os.path.basename(workdir.rstrip("/")) if workdir else ""
        if not shim_id:
            shim_id = next((arg for arg in positional if _HEX64.match(arg)), "")
        if not shim_id:
            return None
        namespace = flags.get("namespace") or "moby"
        return {"kind": "containerd-v1", "binary": binary, "vm": False, "namespace": namespace,
                "id": shim_id, "runtime": "docker" if namespace == "moby" or binary.startswith("docker") else "containerd"}
    if binary == "conmon":
        cid = flags.get("c") or flags.get("cid")
        if not cid:
            return None
        # podman passes itself as --exit-command; CRI-O does not.
        runtime = "podman" if any("podman" in arg for arg in argv) else "cri-o"
        return {"kind": "conmon", "binary": binary, "vm": False, "namespace": None, "id": cid,
                "runtime": runtime, "name": flags.get("n") or flags.get("name"),
                "bundle": flags.get("b") or flags.get("bundle"),
                "oci_runtime": flags.get("r") or flags.get("runtime")}
    return None


def _read_json(path):
    """A runtime's JSON file, only when root wrote it (root-owned, not group/other-writable, no symlink)."""
    if trust.root_owned(path):
        return None
    try:
        return json.loads(procfs.read_text(path))
    except (OSError, ValueError):
        return None


# Annotations by which containerd's runc shim serves several containers from one process (shim grouping).
SHIM_GROUP_ANNOTATIONS = ("io.containerd.runc.v2.group", "io.kubernetes.cri.sandbox-id")
# conmon's pid file in a container's userdata: podman names it conmon.pid, CRI-O conmon-pidfile.
CONMON_PID_FILES = ("conmon.pid", "conmon-pidfile")


class RuntimeFiles:
    """Cached look-ups in runtime state directories; the roots are settable for tests."""

    def __init__(self, containerd_state_dir="/run/containerd", docker_data_dir="/var/lib/docker",
                 crio_storage_dir="/run/containers/storage", podman_storage_dir="/var/lib/containers/storage",
                 pod_log_dir="/var/log/pods"):
        self.containerd_state_dir = containerd_state_dir
        self.docker_data_dir = docker_data_dir
        self.crio_storage_dir = crio_storage_dir
        self.podman_storage_dir = podman_storage_dir
        self.pod_log_dir = pod_log_dir
        self._init_pids = {}
        self._pod_logs = None

    def _containerd_bundles(self, namespace):
        return [os.path.join(self.containerd_state_dir, "io.containerd.runtime.v2.task", namespace),
                os.path.join(self.containerd_state_dir, "io.containerd.runtime.v1.linux", namespace)]

    def _bundle_dirs(self, namespace):
        """(bundle directory, container id) for every bundle of a containerd namespace (v2 and v1 shims)."""
        for base in self._containerd_bundles(namespace):
            try:
                names = os.listdir(base)
            except OSError:
                continue
            for name in names:
                yield os.path.join(base, name), name

    def containerd_init_pids(self, namespace):
        """{init pid: container id} from the root-owned init.pid file the shim writes in each bundle."""
        if namespace not in self._init_pids:
            found = {}
            for bundle, name in self._bundle_dirs(namespace):
                pid, _ = trust.read_pid_file(os.path.join(bundle, "init.pid"))
                if pid is not None:
                    found.setdefault(pid, name)
            self._init_pids[namespace] = found
        return self._init_pids[namespace]

    def containerd_shim_group(self, namespace, container_id):
        """The id of the shim that serves this bundle: its own id, or the group/sandbox its spec names."""
        annotations = self.containerd_annotations(namespace, container_id)
        for key in SHIM_GROUP_ANNOTATIONS:
            if annotations.get(key):
                return annotations[key]
        return container_id

    def containerd_sandbox_members(self, namespace, shim_id):
        """Ids of every bundle served by the shim of shim_id (a pod sandbox and its containers)."""
        return sorted(name for _, name in self._bundle_dirs(namespace)
                      if name == shim_id or self.containerd_shim_group(namespace, name) == shim_id)

    def conmon_pids(self, runtime, container_id):
        """(conmon pid, container init pid) from the root-owned pid files in the container's userdata."""
        for root in self._conmon_roots(runtime):
            userdata = os.path.join(root, "overlay-containers", container_id, "userdata")
            for name in CONMON_PID_FILES:
                conmon_pid, _ = trust.read_pid_file(os.path.join(userdata, name))
                if conmon_pid is not None:
                    return conmon_pid, trust.read_pid_file(os.path.join(userdata, "pidfile"))[0]
        return None, None

    def _conmon_roots(self, runtime):
        roots = [self.crio_storage_dir, self.podman_storage_dir]
        return roots[::-1] if runtime == "podman" else roots

    def containerd_annotations(self, namespace, container_id):
        for base in self._containerd_bundles(namespace):
            spec = _read_json(os.path.join(base, container_id, "config.json"))
            if isinstance(spec, dict):
                return spec.get("annotations") or {}
        return {}

    def find_replacement(self, record):
        """ID of another container of the same pod and name in containerd's bundles (the kubelet's new one)."""
        namespace = record.get("containerd_namespace")
        if not namespace or not record.get("pod"):
            return None
        for _, name in self._bundle_dirs(namespace):
            if name == record["container_id"]:
                continue
            annotations = self.containerd_annotations(namespace, name)
            if (annotations.get("io.kubernetes.cri.sandbox-name") == record["pod"]
                    and annotations.get("io.kubernetes.cri.sandbox-namespace") == record.get("namespace")
                    and annotations.get("io.kubernetes.cri.container-name") == record.get("container_name")):
                return name
        return None

    def pid_namespace(self, shim, container_id):
        """The container's PID namespace from its OCI spec: "container" (its own), "pod" (joined, e.g. the
        sandbox's under shareProcessNamespace), "host" (none of its own), or None when unreadable."""
        if shim["kind"] == "conmon":
            spec = next((found for found in (_read_json(os.path.join(root, "overlay-containers", container_id,
                                                                     "userdata", "config.json"))
                                             for root in self._conmon_roots(shim.get("runtime"))) if found), None)
        else:
            spec = next((found for found in (_read_json(os.path.join(base, container_id, "config.json"))
                                             for base in self._containerd_bundles(shim["namespace"])) if found), None)
        if not isinstance(spec, dict) or not isinstance(spec.get("linux"), dict):
            return None
        entries = [item for item in spec["linux"].get("namespaces") or [] if isinstance(item, dict)]
        pid = next((item for item in entries if item.get("type") == "pid"), None)
        if pid is None:
            return "host"
        return "pod" if pid.get("path") else "container"

    def latest_attempt(self, record):
        """The highest attempt of the pod's container that the kubelet has logged (/var/log/pods/<namespace>_<pod>_
        <uid>/<container>/<attempt>.log), or None."""
        directory = os.path.join(self.pod_log_dir, "%s_%s_%s" % (record.get("namespace"), record.get("pod"),
                                                                 record.get("pod_uid")), record.get("container_name") or "")
        try:
            names = os.listdir(directory)
        except OSError:
            return None
        attempts = [int(name[:-4]) for name in names if name.endswith(".log") and name[:-4].isdigit()]
        return max(attempts) if attempts else None

    def docker_config(self, container_id):
        """(name, labels) from Docker's config.v2.json."""
        config = _read_json(os.path.join(self.docker_data_dir, "containers", container_id, "config.v2.json"))
        if not isinstance(config, dict):
            return None, {}
        name = (config.get("Name") or "").lstrip("/") or None
        labels = (config.get("Config") or {}).get("Labels") or {}
        return name, labels

    def conmon_annotations(self, runtime, container_id):
        # Not the -b bundle of conmon's argv: argv is the caller's to choose.
        paths = [os.path.join(root, "overlay-containers", container_id, "userdata", "config.json")
                 for root in self._conmon_roots(runtime)]
        for path in paths:
            spec = _read_json(path)
            if isinstance(spec, dict):
                return spec.get("annotations") or {}
        return {}

    def pod_from_log_dir(self, pod_uid):
        """(namespace, pod) from /var/log/pods/<namespace>_<pod>_<uid>."""
        if self._pod_logs is None:
            self._pod_logs = {}
            try:
                names = os.listdir(self.pod_log_dir)
            except OSError:
                names = []
            for name in names:
                parts = name.split("_")
                if len(parts) == 3:
                    self._pod_logs[parts[2]] = (parts[0], parts[1])
        return self._pod_logs.get(pod_uid, (None, None))

    def describe(self, runtime, shim, container_id, pod_uid=None):
        """Kubernetes identity and runtime name of a container, from node-local files."""
        info = {"namespace": None, "pod": None, "container_name": None, "pod_uid": pod_uid,
                "name": None, "container_type": None, "sandbox_id": None}
        kube = {}
        if shim and shim["kind"] in ("containerd", "containerd-v1"):
            annotations = self.containerd_annotations(shim["namespace"], container_id)
            kube = {
                "namespace": annotations.get("io.kubernetes.cri.sandbox-namespace"),
                "pod": annotations.get("io.kubernetes.cri.sandbox-name"),
                "container_name": annotations.get("io.kubernetes.cri.container-name"),
                "pod_uid": annotations.get("io.kubernetes.cri.sandbox-uid"),
                "container_type": annotations.get("io.kubernetes.cri.container-type"),
                "sandbox_id": annotations.get("io.kubernetes.cri.sandbox-id"),
            }
            if shim["namespace"] != "moby":
                info["name"] = container_id
        if runtime == "docker":
            name, labels = self.docker_config(container_id)
            info["name"] = name
            kube = {
                "namespace": labels.get("io.kubernetes.pod.namespace"),
                "pod": labels.get("io.kubernetes.pod.name"),
                "container_name": labels.get("io.kubernetes.container.name"),
                "pod_uid": labels.get("io.kubernetes.pod.uid"),
            }
        elif shim and shim["kind"] == "conmon":
            annotations = self.conmon_annotations(runtime, container_id)
            kube = {
                "namespace": annotations.get("io.kubernetes.pod.namespace"),
                "pod": annotations.get("io.kubernetes.pod.name"),
                "container_name": annotations.get("io.kubernetes.container.name"),
                "pod_uid": annotations.get("io.kubernetes.pod.uid"),
            }
            name = shim.get("name")
            crio_name = _CRIO_NAME.match(name or "")
            if crio_name:
                for key in ("namespace", "pod", "container"):
                    target = "container_name" if key == "container" else key
                    kube[target] = kube.get(target) or crio_name.group(key)
                kube["pod_uid"] = kube.get("pod_uid") or crio_name.group("uid")
            else:
                info["name"] = name
        for key, value in kube.items():
            if value:
                info[key] = value
        if info["pod_uid"] and not info["pod"]:
            info["namespace"], info["pod"] = self.pod_from_log_dir(info["pod_uid"])
        return info
