# -*- coding: utf-8 -*-
# Copyright: zombie-cleaner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Container and pod identity from cgroup paths (v1 and v2, cgroupfs and systemd drivers)."""

from __future__ import annotations

import os
import re

# Order matters: a conmon cgroup (crio-conmon-<id>) must be recognised before
# the container pattern (crio-<id>) would swallow it.
_COMPONENT_PATTERNS = (
    (re.compile(r"^crio-conmon-([0-9a-f]{64})(?:\.scope)?$"), "cri-o", True),
    (re.compile(r"^libpod-conmon-([0-9a-f]{64})(?:\.scope)?$"), "podman", True),
    (re.compile(r"^cri-containerd-([0-9a-f]{64})\.scope$"), "containerd", False),
    (re.compile(r"^crio-([0-9a-f]{64})(?:\.scope)?$"), "cri-o", False),
    (re.compile(r"^docker-([0-9a-f]{64})\.scope$"), "docker", False),
    (re.compile(r"^libpod-([0-9a-f]{64})(?:\.scope)?$"), "podman", False),
)
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
# cgroupfs driver: pod<uid>; systemd driver: kubepods-<qos>-pod<uid with _>.slice
_POD_CGROUPFS = re.compile(r"^pod([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[0-9a-f]{32})$")
_POD_SYSTEMD = re.compile(r"^kubepods(?:-[a-z]+)?-pod([0-9a-f_]{32,36})\.slice$")

# Preferred hierarchies when a process has v1 lines: pids first (we read its
# counters later), then the usual ones; the v2 line ("0::") beats them all.
_V1_PREFERENCE = ("pids", "memory", "cpu,cpuacct", "cpu", "devices", "name=systemd")


def parse_cgroup_path(path):
    """Identity carried by one cgroup path.

    Returns a dict with container_id (or None), runtime (a hint, or None),
    pod_uid (or None) and conmon (True when the path is a conmon's own cgroup).
    The first container component wins: the runtime made that one, while the
    workload may create nested cgroups of any name below it.
    """
    result = {"container_id": None, "runtime": None, "pod_uid": None, "conmon": False}
    components = [part for part in path.split("/") if part]
    for index, component in enumerate(components):
        if result["container_id"]:
            break
        pod = _POD_CGROUPFS.match(component)
        if pod:
            result["pod_uid"] = pod.group(1)
            continue
        pod = _POD_SYSTEMD.match(component)
        if pod:
            result["pod_uid"] = pod.group(1).replace("_", "-")
            continue
        for pattern, runtime, conmon in _COMPONENT_PATTERNS:
            match = pattern.match(component)
            if match:
                result.update(container_id=match.group(1), runtime=runtime, conmon=conmon)
                break
        else:
            if _HEX64.match(component):
                # /docker/<id> (cgroupfs driver) or /kubepods/<qos>/pod<uid>/<id>
                result["container_id"] = component
                if index and components[index - 1] == "docker":
                    result["runtime"] = "docker"
    return result


def cgroup_path(entries, controller=None):
    """The path of the process in the v2 hierarchy, or in the given v1 controller.

    With controller=None: the v2 line if it has a real path, else the first
    preferred v1 line. A zombie's v1 lines all read "/", so callers should ask
    about a live process (the container's init) instead.
    """
    by_controllers = {}
    v2_path = None
    for hierarchy, controllers, path in entries:
        if hierarchy == "0" and controllers == "":
            v2_path = path
        else:
            for name in controllers.split(","):
                by_controllers.setdefault(name, path)
            by_controllers.setdefault(controllers, path)
    if controller is not None:
        return by_controllers.get(controller)
    if v2_path not in (None, "/"):
        return v2_path
    for name in _V1_PREFERENCE:
        if by_controllers.get(name) not in (None, "/"):
            return by_controllers[name]
    return v2_path


def identity_from_cgroups(entries):
    """Best container identity across all the lines of /proc/PID/cgroup."""
    best = {"container_id": None, "runtime": None, "pod_uid": None, "conmon": False}
    paths = []
    preferred = cgroup_path(entries)
    if preferred:
        paths.append(preferred)
    paths.extend(path for _, _, path in entries if path != preferred)
    for path in paths:
        found = parse_cgroup_path(path)
        for key in ("container_id", "runtime", "pod_uid"):
            if best[key] is None and found[key] is not None:
                best[key] = found[key]
        best["conmon"] = best["conmon"] or found["conmon"]
        if best["container_id"] and best["pod_uid"] and best["runtime"]:
            break
    return best


def pressure_order(pressure, zombies):
    """Sort key: closest to failing forks first (highest pids pressure, unknown last), then most zombies."""
    return (pressure is None, -(pressure or 0), -(zombies or 0))


def _read_pids_file(directory, name):
    try:
        with open("%s/%s" % (directory, name)) as handle:
            text = handle.read().strip()
    except OSError:
        return None, False
    if text == "max":
        return None, True
    try:
        return int(text), True
    except ValueError:
        return None, False


def _pids_directory(entries, cgroup_root):
    """(hierarchy root, path inside it) holding the pids controller of these cgroup lines."""
    v1_path = cgroup_path(entries, "pids")
    if v1_path is not None:
        candidates = ["%s/pids" % cgroup_root]
        try:
            # Co-mounted hierarchies ("pids,cpu") are rare but legal.
            candidates += ["%s/%s" % (cgroup_root, name) for name in sorted(os.listdir(cgroup_root))
                           if "," in name and "pids" in name.split(",")]
        except OSError:
            pass
        for root in candidates:
            if os.path.isdir(root):
                return root, v1_path
        return None, None
    v2_path = next((path for hierarchy, controllers, path in entries if hierarchy == "0" and controllers == ""), None)
    if v2_path is None:
        return None, None
    # Unified (pure v2) or hybrid, where the v2 tree sits under unified/ (and has no pids controller).
    root = cgroup_root if os.path.exists("%s/cgroup.controllers" % cgroup_root) else "%s/unified" % cgroup_root
    return root, v2_path


def pids_usage(entries, cgroup_root="/sys/fs/cgroup"):
    """pids cgroup use and limit of a process, from its /proc/PID/cgroup lines.

    Returns {"current", "max", "pressure", "cgroup", "limit_cgroup"} or None
    when no pids controller is readable. current and max are the cgroup's own
    files (max None: unlimited). The container's own cgroup may be unlimited
    while its pod's is not (podPidsLimit), so pressure is the highest
    current/max of the cgroup and its ancestors, and limit_cgroup says whose.
    """
    root, path = _pids_directory(entries, cgroup_root.rstrip("/") or "/")
    if root is None:
        return None
    path = "/" + path.strip("/")
    own = root + path.rstrip("/")
    current, found = _read_pids_file(own, "pids.current")
    if not found or current is None:
        return None
    own_max, _ = _read_pids_file(own, "pids.max")
    usage = {"current": current, "max": own_max, "pressure": None, "cgroup": path, "limit_cgroup": None}
    walk = path
    while True:
        directory = root + walk.rstrip("/")
        limit, _ = _read_pids_file(directory, "pids.max")
        used, _ = _read_pids_file(directory, "pids.current")
        if limit is not None and used is not None:
            pressure = used / float(limit) if limit > 0 else 1.0
            if usage["pressure"] is None or pressure > usage["pressure"]:
                usage.update(pressure=round(pressure, 4), limit_cgroup=walk)
        if walk == "/":
            break
        walk = walk.rsplit("/", 1)[0] or "/"
    return usage
