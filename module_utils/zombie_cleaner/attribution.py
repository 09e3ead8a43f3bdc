# -*- coding: utf-8 -*-
# Copyright: zombie-cleaner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Attribute zombies to the container (and pod) that holds them.

The zombie's parent chain is walked up to a shim (containerd-shim-*, the old
docker-containerd-shim, conmon). The process just below the shim is the
container's init; its cgroup (readable, unlike a zombie's v1 cgroup) and the
runtime's files give the container and pod identity.
"""

from __future__ import annotations

from ansible.module_utils.zombie_cleaner import cgroups, procfs, runtimes

# Who does not reap: decides later which remediation can cure it.
APPLICATION = "application"   # the container's own process: restart or tini cures it
RUNTIME = "runtime"           # shim, runc, crun, conmon: a runtime fault
HOST = "host"                 # a host process (kubelet, an exec helper, init)


def label(container):
    """How people name a container: namespace/pod/container, else the runtime's name, else a short id."""
    if container.get("pod"):
        return "%s/%s/%s" % (container.get("namespace"), container["pod"], container.get("container_name") or "")
    return container.get("name") or container["container_id"][:12]


def parent_summary(record):
    """The non-reaping parents of a container record, each marked is_init when it is the container's PID 1
    (then an init that reaps, such as tini, is the prevention; otherwise the application's code is)."""
    init_pid = (record.get("init") or {}).get("pid")
    return [{"name": parent.get("name"), "pid": parent.get("pid"), "parent_class": parent.get("parent_class"),
             "zombie_count": parent.get("zombie_count"), "is_init": parent.get("pid") == init_pid}
            for parent in record.get("parents") or []]


def _proc(stat):
    return {"pid": stat.pid, "name": stat.name, "start_time": stat.start_time}


class Attributor:
    """Walks parent chains over one scan's process table, memoising every step."""

    def __init__(self, table, proc_root="/proc", files=None):
        self.table = table
        self.proc_root = proc_root
        self.files = files or runtimes.RuntimeFiles()
        self._shims = {}
        self._below_shim = {}
        self._cgroups = {}
        self.cmdline_reads = 0

    def cgroup_entries(self, pid):
        """/proc/PID/cgroup lines, read once per pid (identity first, pids numbers later)."""
        if pid not in self._cgroups:
            self._cgroups[pid] = procfs.read_cgroup(self.proc_root, pid)
        return self._cgroups[pid]

    def shim(self, pid):
        """Shim description of pid, or None. Reads cmdline only for shim-like names."""
        if pid not in self._shims:
            stat = self.table.get(pid)
            info = None
            if stat is not None and stat.name in runtimes.SHIM_STAT_NAMES and stat.state != "Z":
                self.cmdline_reads += 1
                info = runtimes.identify_shim(procfs.read_cmdline(self.proc_root, pid))
            self._shims[pid] = info
        return self._shims[pid]

    def below_shim(self, pid):
        """(shim pid, pid of the shim's child on the way up from pid), or None.

        Memoised for every pid visited so many zombies of one parent cost one walk.
        """
        path = []
        result = None
        seen = set()
        current = pid
        while True:
            if current in self._below_shim:
                result = self._below_shim[current]
                break
            stat = self.table.get(current)
            if stat is None or current <= 1 or current in seen:
                break
            seen.add(current)
            if self.shim(stat.ppid):
                result = (stat.ppid, current)
                path.append(current)
                break
            path.append(current)
            current = stat.ppid
        for visited in path:
            self._below_shim[visited] = result
        return result

    def classify_parent(self, parent, shim_pid):
        """application / runtime / host for the parent of a zombie in a container."""
        if parent is None:
            return HOST
        if parent.pid == shim_pid or parent.name in runtimes.RUNTIME_PROCESS_NAMES:
            return RUNTIME
        found = self.below_shim(parent.pid)
        if found and found[0] == shim_pid:
            return APPLICATION
        return HOST

    def attribute(self, zombies):
        """Group zombies into containers and host groups.

        Returns (containers, host_groups); containers and host
        groups are dicts keyed by container id and by "host:<ppid>:<start>".
        """
        containers = {}
        host_groups = {}
        own_cgroup_by_parent = {}
        # One record lookup per (shim, init): every zombie of a container shares it.
        record_by_init = {}
        for zombie in sorted(zombies):
            parent = self.table.get(zombie.ppid)
            if self.shim(zombie.ppid):
                # The shim itself did not reap: the zombie was the container's
                # init (or an exec'd process the subreaper shim adopted).
                found = (zombie.ppid, zombie.pid)
            else:
                found = self.below_shim(zombie.ppid)
            record = None
            if found:
                if found not in record_by_init:
                    record_by_init[found] = self._container_record(containers, found[0], found[1])
                record = record_by_init[found]
            if record is None and zombie.ppid not in own_cgroup_by_parent:
                # Chain reaches no shim: the zombie's own v2 cgroup may still
                # name a container (a host process spawned it into one). Its v1
                # lines read "/" for a zombie, so this helps only on v2. One read
                # per parent: siblings share their parent's way of spawning.
                own_cgroup_by_parent[zombie.ppid] = cgroups.identity_from_cgroups(
                    self.cgroup_entries(zombie.pid))
            if record is None and own_cgroup_by_parent.get(zombie.ppid, {}).get("container_id"):
                identity = own_cgroup_by_parent[zombie.ppid]
                record = containers.get(identity["container_id"]) or self._orphan_record(containers, identity)
            if record is None:
                self._add_host_zombie(host_groups, zombie, parent)
                continue
            parents = record.setdefault("_parents", {})
            if zombie.ppid not in parents:
                shim_pid = record["shim"]["pid"] if record["shim"] else None
                parents[zombie.ppid] = dict(
                    _proc(parent) if parent else {"pid": zombie.ppid, "name": None, "start_time": None},
                    parent_class=self.classify_parent(parent, shim_pid), zombie_count=0)
            entry = parents[zombie.ppid]
            entry["zombie_count"] += 1
            record["zombies"].append(dict(_proc(zombie), ppid=zombie.ppid, parent_class=entry["parent_class"]))
        for record in containers.values():
            record["parents"] = sorted(record.pop("_parents", {}).values(), key=lambda item: item["pid"])
            record["zombie_count"] = len(record["zombies"])
            record["parent_classes"] = sorted({item["parent_class"] for item in record["parents"]})
        for group in host_groups.values():
            group["zombie_count"] = len(group["zombies"])
        return containers, host_groups

    def vm_sandboxes(self):
        """VM-isolated shims (kata) seen on the walk: their workloads are not in host /proc."""
        return [dict(pid=pid, binary=info["binary"], id=info.get("id"))
                for pid, info in sorted(self._shims.items()) if info and info.get("vm")]

    def _container_record(self, containers, shim_pid, init_pid):
        shim_info = self.shim(shim_pid)
        if shim_info.get("vm"):
            return None
        init_stat = self.table.get(init_pid)
        # A zombie init keeps only its v2 cgroup line; identity_from_cgroups skips "/".
        identity = cgroups.identity_from_cgroups(self.cgroup_entries(init_pid))
        container_id = None
        id_source = None
        if shim_info["kind"] in ("containerd", "containerd-v1"):
            container_id = self.files.containerd_init_pids(shim_info["namespace"]).get(init_pid)
            id_source = "bundle" if container_id else None
        elif shim_info["kind"] == "conmon":
            container_id, id_source = shim_info["id"], "conmon"
        if not container_id and identity["container_id"]:
            container_id, id_source = identity["container_id"], "cgroup"
        if not container_id:
            container_id, id_source = shim_info["id"], "shim"
        if container_id in containers:
            return containers[container_id]
        runtime = shim_info.get("runtime") or identity.get("runtime")
        shim_stat = self.table[shim_pid]
        record = {
            "container_id": container_id,
            "id_source": id_source,
            "runtime": runtime,
            "containerd_namespace": shim_info.get("namespace"),
            "shim": dict(_proc(shim_stat), kind=shim_info["kind"], binary=shim_info["binary"], id=shim_info["id"]),
            "init": _proc(init_stat) if init_stat else None,
            "init_is_zombie": bool(init_stat and init_stat.state == "Z"),
            "cgroup_pod_uid": identity.get("pod_uid"),
            "zombies": [],
        }
        record.update(self.files.describe(runtime, shim_info, container_id, identity.get("pod_uid")))
        # One CRI shim serves a whole pod sandbox: killing it takes the pod down.
        record["shim_shared"] = bool(shim_info["kind"] != "conmon" and shim_info["id"] != container_id)
        containers[container_id] = record
        return record

    def _orphan_record(self, containers, identity):
        record = {
            "container_id": identity["container_id"], "id_source": "zombie-cgroup",
            "runtime": identity.get("runtime"), "containerd_namespace": None, "shim": None, "init": None,
            "init_is_zombie": False, "cgroup_pod_uid": identity.get("pod_uid"), "zombies": [],
            "shim_shared": False,
        }
        record.update(self.files.describe(identity.get("runtime"), None, identity["container_id"],
                                          identity.get("pod_uid")))
        containers[identity["container_id"]] = record
        return record

    def _add_host_zombie(self, host_groups, zombie, parent):
        key = "host:%d:%s" % (zombie.ppid, parent.start_time if parent else "gone")
        group = host_groups.get(key)
        if group is None:
            group = host_groups[key] = {
                "key": key,
                "parent": _proc(parent) if parent else {"pid": zombie.ppid, "name": None, "start_time": None},
                "parent_class": HOST,
                "parent_is_host_init": zombie.ppid == 1,
                "zombies": [],
            }
        group["zombies"].append(dict(_proc(zombie), ppid=zombie.ppid, parent_class=HOST))
