# -*- coding: utf-8 -*-
# Copyright: zombie-cleaner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Attribute zombies to the container (and pod) that holds them.

The zombie's parent chain is walked up to a shim (containerd-shim-*, the old
docker-containerd-shim, conmon). The process just below the shim is the
container's init; its cgroup (readable, unlike a zombie's v1 cgroup) and the
runtime's files give the container and pod identity.

Names, argv and cgroup names are the workload's to choose (DESIGN.md section 8).
A shim counts only when it runs as root in the host's user namespace from a
root-owned executable, and a container id only when the runtime's own
root-owned state ties it to that shim and that init. Anything less is
"identity unverified": its zombies are host zombies, and no runtime command
or signal is ever aimed at the id it claims.
"""

from __future__ import annotations

import re

from ansible.module_utils.zombie_cleaner.observe import cgroups, procfs, records, runtimes, trust

# Who does not reap: decides later which remediation can cure it.
APPLICATION = "application"   # the container's own process: restart or tini cures it
EXEC = "exec"                 # exec'd into the container (an exec probe, kubectl exec): its own advice
CURABLE = (APPLICATION, EXEC)  # a restart of the container ends them too
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
        self._untrusted = {}           # pid -> (claimed shim info, why it is not believed)
        self._inits = {}               # shim pid -> init pids that its bundles tie to it
        self.cmdline_reads = 0

    def cgroup_entries(self, pid):
        """/proc/PID/cgroup lines, read once per pid (identity first, pids numbers later)."""
        if pid not in self._cgroups:
            self._cgroups[pid] = procfs.read_cgroup(self.proc_root, pid)
        return self._cgroups[pid]

    def shim(self, pid):
        """Shim description of pid when it is a shim that may be believed, else None.

        Reads cmdline only for shim-like names. A shim-like process that is not
        root's own (an impostor, a rootless runtime, a shim inside a container)
        is walked through like any process, and remembered for the report."""
        if pid not in self._shims:
            stat = self.table.get(pid)
            info = None
            if stat is not None and stat.name in runtimes.SHIM_STAT_NAMES and not procfs.is_zombie(stat):
                self.cmdline_reads += 1
                info = runtimes.identify_shim(procfs.read_cmdline(self.proc_root, pid))
                problem = info and trust.runtime_process_problem(self.proc_root, pid)
                if problem:
                    self._untrusted[pid] = (info, problem)
                    info = None
            self._shims[pid] = info
        return self._shims[pid]

    def untrusted_claim(self, pid):
        """The identity that an unbelieved shim-like ancestor of pid claims, or None."""
        seen = set()
        while pid > 1 and pid not in seen:
            seen.add(pid)
            if pid in self._untrusted:
                info, problem = self._untrusted[pid]
                return {"container_id": info.get("id"), "runtime": info.get("runtime"),
                        "source": "argv of %s[%d]" % (info["binary"], pid),
                        "reason": "shim-like process %d is not believed: %s" % (pid, problem)}
            stat = self.table.get(pid)
            if stat is None:
                return None
            pid = stat.ppid
        return None

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
        """application / runtime / host for the parent of a zombie in a container.

        A process is a runtime process by what it is, not by its name: the shim
        itself, or a shim's child outside the container (runc, conmon's helpers)
        that runs a root-owned binary of the host. A `podman` or `containerd` of
        a CI or Docker-in-Docker container is the container's own application."""
        if parent is None:
            return HOST
        if parent.pid == shim_pid:
            return RUNTIME
        found = self.below_shim(parent.pid)
        inside = found and found[0] == shim_pid and found[1] in self._inits.get(shim_pid, ())
        if (parent.name in runtimes.RUNTIME_PROCESS_NAMES and not inside
                and not trust.runtime_process_problem(self.proc_root, parent.pid)
                and trust.host_binary(self.proc_root, parent.pid)):
            return RUNTIME
        if found and found[0] == shim_pid:
            # Below the container's init: the application. Below another child of the shim: an exec'd
            # process (runc exec's process is adopted by the subreaper shim, not the init).
            return APPLICATION if inside else EXEC
        return HOST

    def attribute(self, zombies):
        """Group zombies into containers and host groups.

        Returns (containers, host_groups): records.ContainerRecord by container id and records.HostGroup by
        "host:<ppid>:<start>".
        """
        containers = {}
        host_groups = {}
        claims = {}
        parents = {}                   # container id -> {parent pid: parent entry}
        # One record lookup per (shim, init): every zombie of a container shares it.
        record_by_init = {}
        for zombie in sorted(zombies):
            found = self._shim_and_child(zombie)
            record = None
            if found:
                if found not in record_by_init:
                    record_by_init[found] = self._container_record(containers, found[0], found[1])
                record = record_by_init[found]
            if not isinstance(record, records.ContainerRecord):
                if zombie.ppid not in claims:
                    claims[zombie.ppid] = record or self._unverified_claim(zombie)
                self._add_host_zombie(host_groups, zombie, self.table.get(zombie.ppid), claims[zombie.ppid])
                continue
            entry = self._parent_entry(parents.setdefault(record.container_id, {}), zombie, record)
            entry["zombie_count"] += 1
            record.zombies.append(dict(_proc(zombie), ppid=zombie.ppid, parent_class=entry["parent_class"]))
        for record in containers.values():
            record.parents = sorted(parents.get(record.container_id, {}).values(), key=lambda item: item["pid"])
            record.parent_classes = sorted({item["parent_class"] for item in record.parents})
        return containers, host_groups

    def _shim_and_child(self, zombie):
        """(shim pid, the shim's child on the zombie's way up), or None."""
        if self.shim(zombie.ppid):
            # The shim itself did not reap: the zombie was the container's
            # init (or an exec'd process the subreaper shim adopted).
            return zombie.ppid, zombie.pid
        return self.below_shim(zombie.ppid)

    def _parent_entry(self, parents, zombie, record):
        """The container's entry for the zombie's parent, classified once."""
        if zombie.ppid not in parents:
            parent = self.table.get(zombie.ppid)
            parents[zombie.ppid] = dict(
                _proc(parent) if parent else {"pid": zombie.ppid, "name": None, "start_time": None},
                parent_class=self.classify_parent(parent, record.shim["pid"]), zombie_count=0)
        return parents[zombie.ppid]

    def _unverified_claim(self, zombie):
        """What a host zombie's chain or cgroup claims about a container, for the report only.

        The zombie's own v2 cgroup may name a container (its v1 lines read "/"),
        and an unbelieved shim may name one in its argv: both are the
        workload's word, so the claim is reported and never acted on."""
        claim = self.untrusted_claim(zombie.ppid)
        if claim:
            return claim
        identity = cgroups.identity_from_cgroups(self.cgroup_entries(zombie.pid))
        if identity["container_id"]:
            return {"container_id": identity["container_id"], "runtime": identity["runtime"],
                    "source": "cgroup of zombie %d" % zombie.pid,
                    "reason": "no shim that may be believed is among its ancestors"}
        return None

    def vm_sandboxes(self):
        """VM-isolated shims (kata) seen on the walk: their workloads are not in host /proc."""
        return [dict(pid=pid, binary=info["binary"], id=info.get("id"))
                for pid, info in sorted(self._shims.items()) if info and info.get("vm")]

    def _verified_id(self, shim_pid, shim_info, child_pid):
        """(container id, init pid, None) as the runtime's root-owned state ties them to this shim, or
        (None, None, why not). child_pid is the shim's child on the zombie's way up."""
        if shim_info["kind"] == "conmon":
            conmon_pid, init_pid = self.files.conmon_pids(shim_info.get("runtime"), shim_info["id"])
            if conmon_pid != shim_pid:
                return None, None, ("no root-owned conmon pid file of container %s names pid %d"
                                    % (shim_info["id"], shim_pid))
            if init_pid is not None and init_pid != child_pid:
                return None, None, "the container's pid file names pid %s, not %d" % (init_pid, child_pid)
            self._inits[shim_pid] = {child_pid}
            return shim_info["id"], child_pid, None
        namespace, shim_id = shim_info["namespace"], shim_info["id"]
        init_pids = self.files.containerd_init_pids(namespace)
        members = self.files.containerd_sandbox_members(namespace, shim_id)
        # The shim is the one of these bundles only if the kernel says their init is its child.
        inits = {pid: name for pid, name in init_pids.items() if name in members and pid in self.table
                 and self.table[pid].ppid == shim_pid}
        if not inits:
            return None, None, ("no bundle of containerd namespace %s under %s has an init that is a child of "
                                "shim %d" % (namespace, self.files.containerd_state_dir, shim_pid))
        self._inits[shim_pid] = set(inits)
        if child_pid in inits:
            return inits[child_pid], child_pid, None
        # An exec'd process, runc, or an orphan the subreaper shim adopted: it belongs to the member
        # whose init shares its cgroup, else to the shim's own bundle.
        path = cgroups.cgroup_path(self.cgroup_entries(child_pid))
        same = [pid for pid in sorted(inits) if path and cgroups.cgroup_path(self.cgroup_entries(pid)) == path]
        init_pid = same[0] if len(same) == 1 else next((pid for pid, name in inits.items() if name == shim_id), None)
        if init_pid is None:
            return None, None, "pid %d is no init of shim %d and shares no member's cgroup" % (child_pid, shim_pid)
        return inits[init_pid], init_pid, None

    def _container_record(self, containers, shim_pid, child_pid):
        """The container record of (shim, child), or a claim dict (unverified) or None (VM sandbox)."""
        shim_info = self.shim(shim_pid)
        if shim_info.get("vm"):
            return None
        container_id, init_pid, problem = self._verified_id(shim_pid, shim_info, child_pid)
        if problem:
            return {"claimed_container_id": shim_info["id"], "runtime": shim_info.get("runtime"),
                    "source": "argv of %s[%d]" % (shim_info["binary"], shim_pid), "reason": problem}
        if container_id in containers:
            return containers[container_id]
        init_stat = self.table.get(init_pid)
        # A zombie init keeps only its v2 cgroup line; identity_from_cgroups skips "/".
        identity = cgroups.identity_from_cgroups(self.cgroup_entries(init_pid))
        runtime = shim_info.get("runtime")
        record = records.ContainerRecord(
            container_id=container_id,
            id_source="conmon" if shim_info["kind"] == "conmon" else "bundle",
            runtime=runtime,
            containerd_namespace=shim_info.get("namespace"),
            shim=dict(_proc(self.table[shim_pid]), kind=shim_info["kind"], binary=shim_info["binary"],
                      id=shim_info["id"]),
            init=_proc(init_stat) if init_stat else None,
            init_is_zombie=procfs.is_zombie(init_stat),
            cgroup_pod_uid=identity.get("pod_uid"),
            # One CRI shim serves a whole pod sandbox: killing it takes the pod down.
            shim_shared=bool(shim_info["kind"] != "conmon" and shim_info["id"] != container_id))
        record.update(self.files.describe(runtime, shim_info, container_id, identity.get("pod_uid")))
        if record.shim_shared:
            record.sandbox_members = [dict(self.files.describe(runtime, shim_info, member, None), container_id=member)
                                      for member in self.files.containerd_sandbox_members(
                                          shim_info["namespace"], shim_info["id"]) if member != container_id]
        record.identity_unknown = identity_unknown(record)
        record.pid_namespace = self.files.pid_namespace(shim_info, container_id)
        record.update(workload_of(record))
        containers[container_id] = record
        return record

    def _add_host_zombie(self, host_groups, zombie, parent, claim=None):
        key = "host:%d:%s" % (zombie.ppid, parent.start_time if parent else "gone")
        group = host_groups.get(key)
        if group is None:
            group = host_groups[key] = records.HostGroup(
                key=key, parent=_proc(parent) if parent else {"pid": zombie.ppid, "name": None, "start_time": None},
                parent_class=HOST, parent_is_host_init=zombie.ppid == 1, unverified_identity=_claim_view(claim))
        group.zombies.append(dict(_proc(zombie), ppid=zombie.ppid, parent_class=HOST))


def _claim_view(claim):
    if not claim:
        return None
    return {"container_id": claim.get("container_id") or claim.get("claimed_container_id"),
            "runtime": claim.get("runtime"), "source": claim["source"], "reason": claim["reason"]}


# Kubernetes' alphabet for generated names (no vowels, no 0, 1, 3): pod-template-hash and random suffixes.
_SAFE = "[bcdfghjklmnpqrstvwxz2456789]"
# (kind, pattern of the pod name) in the order they are tried; the name is the first group.
_GENERATED_POD_NAMES = (
    ("cronjob", re.compile(r"^(.+)-\d{8,}-%s{5}$" % _SAFE)),            # <cronjob>-<scheduled minute>-<5>
    ("deployment", re.compile(r"^(.+)-%s{6,10}-%s{5}$" % (_SAFE, _SAFE))),  # <deployment>-<template hash>-<5>
    ("statefulset", re.compile(r"^(.+)-\d+$")),                         # <statefulset>-<ordinal>
    ("daemonset or job", re.compile(r"^(.+)-%s{5}$" % _SAFE)),           # <daemonset>-<5> or <job>-<5>
)


def workload_of(record):
    """The workload that owns a container across pod generations: {"workload", "workload_kind"}.

    Derived from node-local facts only, the pod name's generated suffixes (the kubelet's owner references
    are not on the node): two pods of one Deployment, or a pod and its replacement, share it. For Docker and
    podman, the container's name. A derivation, not the API's word: a bare pod named like web-0 reads as a
    StatefulSet."""
    pod = record.get("pod")
    if not pod:
        name = record.get("name") or record["container_id"][:12]
        return {"workload": name, "workload_kind": "container"}
    kind, owner = "pod", pod
    for candidate, pattern in _GENERATED_POD_NAMES:
        match = pattern.match(pod)
        if match:
            kind, owner = candidate, match.group(1)
            break
    return {"workload": "%s/%s/%s" % (record.get("namespace"), owner, record.get("container_name") or ""),
            "workload_kind": kind}


def kubelet_managed(record):
    """A container the kubelet owns: containerd's k8s.io namespace or CRI-O, whatever its annotations say."""
    return record.get("containerd_namespace") == "k8s.io" or record.get("runtime") == "cri-o"


def identity_unknown(record):
    """Why a Kubernetes container cannot be named (so the whitelist cannot judge it), or None."""
    if kubelet_managed(record) and not (record.get("namespace") and record.get("pod")):
        return ("a Kubernetes container whose pod or namespace cannot be read from the runtime's files: "
                "the whitelist cannot judge it")
    return None
