# -*- coding: utf-8 -*-
# Copyright: zombie-cleaner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The shapes of what a scan finds: a container that holds zombies, and a host group (the zombies of one host
process), each with the verdict of this run.

Attribution fills in what the node shows; the scan's evaluation makes a judged copy (dataclasses.replace)
with the sightings, confirmation and decision. to_result() and to_cure() are the one place the records of
zombie_scan's result are made: its RETURN documents them (containers, host_groups, to_cure).

A result grows with containers and parent groups, never with zombies: each group lists at most SAMPLE_SIZE
of its zombies, the oldest first, with its count and the first-seen times of its oldest and newest. The full
list stays on the node: the state keeps every zombie's first-seen time and run count (what confirmation and
the remediation need), the audit log the sightings.
"""

from __future__ import annotations

import dataclasses

from ansible.module_utils.zombie_cleaner.record import state

SAMPLE_SIZE = 10


class Fields:
    """A record's fields read by name as well (record["pod"], record.get("pod")), the way the remediation
    reads the same record from a result (a dict), and changed only in the fields it declares (update)."""

    def __getitem__(self, name):
        try:
            return getattr(self, name)
        except AttributeError:
            raise KeyError(name) from None

    def get(self, name, default=None):
        return getattr(self, name, default)

    def update(self, *mappings, **fields):
        declared = {field.name for field in dataclasses.fields(self)}
        for mapping in mappings + (fields,):
            for name, value in mapping.items():
                if name not in declared:
                    raise KeyError("%s has no field %r" % (type(self).__name__, name))
                setattr(self, name, value)


def zombie_sample(zombies, size=SAMPLE_SIZE):
    """The oldest zombies first (first seen, then pid): the ones a result lists."""
    return sorted(zombies, key=lambda zombie: (zombie.get("first_seen") or 0, zombie["pid"]))[:size]


@dataclasses.dataclass
class Group(Fields):
    """Zombies of one container or one host process, and what this run made of them.

    zombies: every zombie seen, {pid, ppid, name, start_time, parent_class}; once judged, each also with
    confirmed and first_seen."""

    zombies: list = dataclasses.field(default_factory=list)
    sightings: int = 0            # runs in a row that still saw some of the same zombies
    confirmed: bool = False
    since: float = None           # when that streak began
    candidate: bool = False

    @property
    def zombie_count(self):
        return len(self.zombies)

    def confirmed_zombies(self):
        return [zombie for zombie in self.zombies if zombie.get("confirmed")]

    def zombie_fields(self):
        """How a result shows the zombies: counts, the first-seen times of the oldest and newest, a sample."""
        seen = [zombie["first_seen"] for zombie in self.zombies if zombie.get("first_seen") is not None]
        sample = zombie_sample(self.zombies)
        return {"zombie_count": self.zombie_count, "confirmed_zombies": len(self.confirmed_zombies()),
                "oldest_seen": min(seen) if seen else None, "newest_seen": max(seen) if seen else None,
                "zombies": [dict(zombie) for zombie in sample], "zombies_omitted": self.zombie_count - len(sample)}

    def cure_fields(self):
        """How the remediation gets the zombies: the confirmed ones only (the others may be about to be
        reaped by their parent, which then learns their exit status), a sample of them, and what names the
        rest in the node's state: every zombie of this group first seen no later than confirmed_until
        (state.first_seen_until), which is exactly the confirmed set."""
        confirmed = self.confirmed_zombies()
        return {"zombie_count": self.zombie_count, "confirmed_zombies": len(confirmed),
                "unconfirmed_zombies": self.zombie_count - len(confirmed),
                "confirmed_until": max([zombie["first_seen"] for zombie in confirmed] or [None]),
                "zombies": [dict(zombie) for zombie in zombie_sample(confirmed)]}


@dataclasses.dataclass
class ContainerRecord(Group):
    """A container whose identity the runtime's own root-owned state confirms (attribution), its pids cgroup,
    and this run's verdict (evaluate)."""

    container_id: str = None
    id_source: str = None                 # bundle (containerd, Docker) or conmon (CRI-O, podman)
    runtime: str = None
    containerd_namespace: str = None
    shim: dict = None                     # {pid, name, start_time, kind, binary, id}
    init: dict = None                     # {pid, name, start_time}
    init_is_zombie: bool = False
    cgroup_pod_uid: str = None
    # From the runtime's files (runtimes.RuntimeFiles.describe).
    namespace: str = None
    pod: str = None
    container_name: str = None
    pod_uid: str = None
    name: str = None
    container_type: str = None
    sandbox_id: str = None
    shim_shared: bool = False             # a CRI shim serving a whole pod sandbox
    sandbox_members: list = None          # the other containers of that sandbox
    identity_unknown: str = None
    pid_namespace: str = None
    workload: str = None
    workload_kind: str = None
    parents: list = dataclasses.field(default_factory=list)      # [{pid, name, start_time, parent_class, zombie_count}]
    parent_classes: list = dataclasses.field(default_factory=list)
    # The container's pids cgroup.
    pids_current: int = None
    pids_max: int = None
    pids_pressure: float = None
    pids_limit_cgroup: str = None
    # The verdict.
    confirm_count: int = None
    protected: bool = False
    protected_by: dict = None
    protected_members: list = None
    runtime_fault: bool = False
    decision: str = None

    IDENTITY = ("container_id", "id_source", "runtime", "containerd_namespace", "namespace", "pod",
                "container_name", "pod_uid", "name", "container_type", "sandbox_id", "cgroup_pod_uid", "workload",
                "workload_kind", "pid_namespace")
    PROCESSES = ("shim", "init", "init_is_zombie", "shim_shared", "sandbox_members", "identity_unknown", "parents",
                 "parent_classes")
    PIDS = ("pids_current", "pids_max", "pids_pressure", "pids_limit_cgroup")
    VERDICT = ("sightings", "confirm_count", "confirmed", "since", "protected", "protected_by", "protected_members",
               "runtime_fault", "candidate", "decision")

    def _fields(self, names):
        return {name: getattr(self, name) for name in names}

    def to_result(self):
        """The record in zombie_scan's result (RETURN: containers)."""
        return dict(self._fields(self.IDENTITY + self.PROCESSES + self.PIDS + self.VERDICT), **self.zombie_fields())

    def to_cure(self):
        """The record handed to zombie_remediate (RETURN: to_cure.containers)."""
        return dict(self._fields(self.IDENTITY + self.PROCESSES + self.PIDS + self.VERDICT), **self.cure_fields())

    def state_identity(self):
        """What the state keeps of the container beside its sightings."""
        keep = self._fields(("runtime", "namespace", "pod", "container_name", "name"))
        keep["init"] = self.init and [self.init["pid"], self.init["start_time"]]
        keep["shim"] = self.shim and [self.shim["pid"], self.shim["start_time"]]
        return keep


@dataclasses.dataclass
class HostGroup(Group):
    """Zombies of one host process (or of a process whose container identity is not believed)."""

    key: str = None                       # host:<parent pid>:<parent start time>
    parent: dict = None                   # {pid, name, start_time}
    parent_class: str = None
    parent_is_host_init: bool = False
    unverified_identity: dict = None      # what an unbelieved shim or a cgroup claims, and why it is not believed

    FIELDS = ("key", "parent", "parent_class", "parent_is_host_init", "unverified_identity", "sightings",
              "confirmed", "since", "candidate")

    def to_result(self):
        """The group in zombie_scan's result (RETURN: host_groups)."""
        return dict({name: getattr(self, name) for name in self.FIELDS}, **self.zombie_fields())

    def to_cure(self):
        """The group handed to zombie_remediate (RETURN: to_cure.host_groups)."""
        return dict({name: getattr(self, name) for name in self.FIELDS}, **self.cure_fields())


def judged_zombies(group, entry):
    """The group's zombies, each marked confirmed or not and with its first-seen time, from its sighting entry."""
    confirmed = set(entry["confirmed_zombies"])
    return [dict(zombie, confirmed=state.zombie_key(zombie) in confirmed,
                 first_seen=entry["zombies"].get(state.zombie_key(zombie))) for zombie in group.zombies]
