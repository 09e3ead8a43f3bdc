#!/usr/bin/env python3
"""A test fleet on one machine, reached over real SSH.

Each node has its own PID, mount and UTS namespace (its own process table,
/proc, /run and hostname: a scan on node3 sees only node3's processes) and runs
OpenSSH sshd on its own loopback address. The fleet directory holds everything:
a client key, each node's host key, the known_hosts file the inventory uses
(host key checking stays on), the generated inventory and each node's files.

    fleet.py up      --dir D [--nodes 4] [--paramiko NODE ...] [--port 2222] [--first-address 10]
    fleet.py memory  --dir D              # each node's memory (PSS of its processes) and the fleet's
    fleet.py zombies --dir D NODE COUNT   # a parent holding COUNT zombies inside NODE
    fleet.py stop    --dir D NODE         # NODE becomes unreachable (its namespace ends)
    fleet.py start   --dir D NODE
    fleet.py down    --dir D              # nothing left running; files stay in D

Run ansible with the environment `env` prints (HOME inside D: paramiko reads
known_hosts only from ~/.ssh). Needs root, util-linux and openssh-server.
Standard library only.

Nodes start all at once (up to 200, on 127.0.0.FIRST..254 and one port; 100
nodes are up in about 1.5 s on two cores). A node is its init (Python, standard
library only) and one sshd listener: about 5.5 MiB of its own memory (PSS)
before any session, about 2 MiB more per open SSH session (`memory` shows it).
`up` refuses a fleet that would not fit in a quarter of the available memory
at 16 MiB per node.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
NODE_INIT = os.path.join(HERE, "node_init.py")
ZOMBIE_PARENT = os.path.join(os.path.dirname(HERE), "helpers", "zombie_parent.py")

SSHD_CONFIG = """\
Port {port}
ListenAddress {address}
HostKey {host_key}
PidFile none
AuthorizedKeysFile {authorized_keys}
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
# The fleet directory lives under /tmp (world-writable parents).
StrictModes no
# Ansible's forks and ControlPersist sessions, many at once.
MaxStartups 200
MaxSessions 64
Subsystem sftp internal-sftp
LogLevel INFO
"""


# Memory a node may need at most: about 5.5 MiB (PSS) idle (init 3.4, sshd listener 2.1), about 2 MiB more
# per open SSH session (Ansible keeps one per node), a zombie maker's Python and its zombies' kernel
# task structures. `up` refuses a fleet whose nodes at this figure would take more than a quarter
# of MemAvailable: the rest is for the controller, its ssh masters and forks, and the machine.
NODE_MEMORY_KIB = 16 * 1024
MEMORY_SHARE = 4


class FleetError(Exception):
    pass


class Fleet:
    """The fleet described by <dir>/fleet.json."""

    def __init__(self, directory):
        self.dir = os.path.abspath(directory)
        self.meta_path = os.path.join(self.dir, "fleet.json")
        self.meta = {}
        if os.path.exists(self.meta_path):
            with open(self.meta_path) as handle:
                self.meta = json.load(handle)

    # -- paths -------------------------------------------------------------
    @property
    def inventory(self):
        return os.path.join(self.dir, "inventory.yml")

    @property
    def known_hosts(self):
        return os.path.join(self.dir, "known_hosts")

    @property
    def client_key(self):
        return os.path.join(self.dir, "id_ed25519")

    @property
    def home(self):
        return os.path.join(self.dir, "home")

    @property
    def control_path_dir(self):
        return os.path.join(self.dir, "cp")

    def node_dir(self, name):
        return os.path.join(self.dir, "nodes", name)

    @property
    def names(self):
        return [node["name"] for node in self.meta.get("nodes", [])]

    def node(self, name):
        for node in self.meta.get("nodes", []):
            if node["name"] == name:
                return node
        raise FleetError("no node %r in %s (nodes: %s)" % (name, self.dir, ", ".join(self.names)))

    def env(self):
        """Environment for ansible against this fleet."""
        return {"HOME": self.home, "ANSIBLE_HOST_KEY_CHECKING": "True"}

    # -- bring up ----------------------------------------------------------
    def create(self, count, paramiko=(), port=2222, first_address=10):
        if any(self._running(node) for node in self.meta.get("nodes", [])):
            raise FleetError("%s holds a running fleet; run down first" % self.dir)
        if not 1 <= count <= 200 or first_address + count > 255:
            raise FleetError("node count %d does not fit 127.0.0.%d..254" % (count, first_address))
        _check_memory(count)
        for path in (self.dir, self.home, os.path.join(self.home, ".ssh"), self.control_path_dir):
            os.makedirs(path, mode=0o700, exist_ok=True)
        if not os.path.exists(self.client_key):
            _keygen(self.client_key, "zombie-cleaner test fleet client")
        with open(self.client_key + ".pub") as handle:
            public_key = handle.read()
        _write(os.path.join(self.dir, "authorized_keys"), public_key, 0o600)
        nodes, known = [], []
        names = ["node%d" % (index + 1) for index in range(count)]
        missing = []
        for name in names:
            os.makedirs(os.path.join(self.node_dir(name), "var"), mode=0o700, exist_ok=True)
            host_key = os.path.join(self.node_dir(name), "ssh_host_ed25519_key")
            if not os.path.exists(host_key):
                missing.append((host_key, name))
        _keygen_all(missing)
        for index, name in enumerate(names):
            address = "127.0.0.%d" % (first_address + index)
            directory = self.node_dir(name)
            host_key = os.path.join(directory, "ssh_host_ed25519_key")
            _write(os.path.join(directory, "sshd_config"), SSHD_CONFIG.format(
                port=port, address=address, host_key=host_key,
                authorized_keys=os.path.join(self.dir, "authorized_keys")), 0o600)
            with open(host_key + ".pub") as handle:
                key_type, key = handle.read().split()[:2]
            known.append("[%s]:%d %s %s\n" % (address, port, key_type, key))
            nodes.append({"name": name, "address": address, "port": port,
                          "connection": "paramiko_ssh" if name in paramiko else "ssh"})
        unknown = set(paramiko) - {node["name"] for node in nodes}
        if unknown:
            raise FleetError("--paramiko names no node of this fleet: %s" % ", ".join(sorted(unknown)))
        _write(self.known_hosts, "".join(known), 0o644)
        # paramiko reads ~/.ssh/known_hosts only: the same file, under the fleet's HOME.
        _write(os.path.join(self.home, ".ssh", "known_hosts"), "".join(known), 0o644)
        self.meta = {"nodes": nodes}
        self._save()
        _write(self.inventory, self.render_inventory(), 0o644)
        self.start_all(self.names)

    def render_inventory(self):
        """The generated inventory: the k8s_nodes layout of inventory/k8s.example.yml."""
        lines = ["---",
                 "# Generated by tests/fleet/fleet.py for the test fleet in %s." % self.dir,
                 "# Same groups as inventory/k8s.example.yml: node1 is the control plane.",
                 "k8s_nodes:",
                 "  vars:",
                 "    ansible_user: root",
                 "    ansible_ssh_private_key_file: %s" % self.client_key,
                 "    ansible_ssh_common_args: >-",
                 "      -o UserKnownHostsFile=%s -o StrictHostKeyChecking=yes" % self.known_hosts,
                 "    ansible_control_path_dir: %s" % self.control_path_dir,
                 "    ansible_python_interpreter: /usr/bin/python3",
                 "    # Logged in as root already; a real fleet keeps become (sudo).",
                 "    ansible_become: false",
                 "  children:"]
        groups = {"control_plane": self.names[:1], "workers": self.names[1:]}
        for group, members in groups.items():
            lines.append("    %s:" % group)
            lines.append("      hosts:" + ("" if members else " {}"))
            for name in members:
                node = self.node(name)
                var = os.path.join(self.node_dir(name), "var")
                lines += ["        %s:" % name,
                          "          ansible_host: %s" % node["address"],
                          "          ansible_port: %d" % node["port"],
                          "          ansible_connection: %s" % node["connection"],
                          # Each node's files in its own directory (the nodes share one filesystem).
                          "          zombie_cleaner_state_path: %s/state.json" % var,
                          "          zombie_cleaner_audit_log_path: %s/audit.log" % var,
                          "          zombie_cleaner_metrics_textfile_dir: %s" % var]
        return "\n".join(lines) + "\n"

    def start(self, name):
        self.start_all([name])

    def start_all(self, names):
        """Start the named nodes that are not running, all at once, and wait until each sshd answers with
        its node's host key. On failure the nodes started here are stopped again."""
        nodes = [self.node(name) for name in names]
        nodes = [node for node in nodes if not (node.get("init_pid") and _alive(node["init_pid"]))]
        launched = {}
        try:
            for node in nodes:
                launched[node["name"]] = self._launch(node)
            for node in nodes:
                unshare = launched[node["name"]]
                node["unshare_pid"] = unshare.pid
                node["init_pid"] = _wait(lambda: _only_child(unshare.pid) or _ended(unshare),
                                         "node %s's init" % node["name"])
                if node["init_pid"] < 0:
                    raise FleetError("node %s's init ended at once (see %s)" % (
                        node["name"], os.path.join(self.node_dir(node["name"]), "node.log")))
                node["init_start"] = _start_time(node["init_pid"])
            self._save()
            self._wait_answers(nodes)
        except BaseException:
            for node in nodes:
                if node["name"] in launched:
                    self.stop(node["name"])
            raise

    def _launch(self, node):
        directory = self.node_dir(node["name"])
        with open(os.path.join(directory, "node.log"), "ab") as log:
            # -I -S: the init needs the standard library only (no site-packages, less memory per node).
            return subprocess.Popen(
                ["unshare", "--pid", "--fork", "--kill-child", "--mount", "--mount-proc", "--uts",
                 sys.executable, "-I", "-S", NODE_INIT, node["name"], os.path.join(directory, "sshd_config"),
                 os.path.join(directory, "sshd.log")],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)

    def _wait_answers(self, nodes, timeout=60.0):
        """Up when the node's own sshd (a child of its init) listens on the node's address and port. Read
        from /proc, without a connection: an SSH handshake per node would cost each sshd a re-exec and
        a key exchange, seconds for a hundred nodes on two cores. Another process holding the address
        would not pass (the listening socket must be one of this sshd's), and that sshd, unable to bind,
        ends with its node."""
        waiting = list(nodes)
        deadline = time.monotonic() + timeout
        while waiting:
            listening = _listening()
            waiting = [node for node in waiting
                       if not _sockets_of_children(node["init_pid"]) & listening.get((node["address"], node["port"]),
                                                                                   set())]
            if not waiting:
                return
            ended = [node["name"] for node in waiting if not self._running(node)]
            if ended or time.monotonic() > deadline:
                names = ended or sorted(node["name"] for node in waiting)
                raise FleetError("%s for sshd of %s (see %s)" % (
                    "node ended waiting" if ended else "timed out waiting", ", ".join(names),
                    os.path.join(self.node_dir(names[0]), "sshd.log")))
            time.sleep(0.05)

    # -- operate -----------------------------------------------------------
    def run_in(self, name, argv, **popen):
        """Start argv inside the node's namespaces (as a process of that node)."""
        node = self.running_node(name)
        return subprocess.Popen(["nsenter", "--target", str(node["init_pid"]), "--pid", "--mount", "--uts",
                                 "--"] + list(argv), **popen)

    def zombies(self, name, count):
        """A parent process inside node `name` holding `count` zombies; returns its pids as the node sees them."""
        self.running_node(name)                  # before its output file goes into the node's directory
        out = os.path.join(self.node_dir(name), "zombie-parent.%d.out" % time.time_ns())
        with open(out, "w") as handle:
            # Started in the background by a shell that exits at once: the parent
            # becomes a child of the node's init, and nothing of it stays on the host side.
            self.run_in(name, ["sh", "-c", 'python3 "$0" "$1" &', ZOMBIE_PARENT, str(count)],
                        stdin=subprocess.DEVNULL, stdout=handle, stderr=subprocess.STDOUT).wait(20)
        line = _wait(lambda: _complete_line(out), "the zombie parent in %s" % name)
        os.unlink(out)
        return [int(pid) for pid in line.split()]

    def processes(self, name):
        """The node's process table as the node sees it: [{pid, ppid, state, comm}]."""
        ps = self.run_in(name, ["ps", "-eo", "pid=,ppid=,stat=,comm="], stdout=subprocess.PIPE, text=True)
        output, _ = ps.communicate(timeout=20)
        table = []
        for line in output.splitlines():
            pid, ppid, stat, comm = line.split(None, 3)
            table.append({"pid": int(pid), "ppid": int(ppid), "state": stat[0], "comm": comm})
        return table

    def zombie_pids(self, name):
        return sorted(item["pid"] for item in self.processes(name) if item["state"] == "Z")

    def restart(self, name):
        """A fresh boot of the node: every process in it ends; its files stay."""
        self.stop(name)
        self.start(name)

    def stop(self, name):
        """Kill the node's init: its PID namespace ends, sshd and every session with it."""
        self.stop_all([name])

    def stop_all(self, names):
        nodes = [self.node(name) for name in names]
        for node in nodes:
            if self._running(node):
                os.kill(node["init_pid"], signal.SIGKILL)
        for node in nodes:
            if node.get("unshare_pid"):
                _reap(node["unshare_pid"])
            node.pop("init_pid", None)
            node.pop("unshare_pid", None)
        self._save()

    def down(self):
        self.stop_all(self.names)
        self.close_connections()

    def memory(self):
        """{node: KiB}: the proportional set size (PSS) of every process in each running node's PID
        namespace, shared pages split among the processes that map them; the node's own footprint."""
        namespaces = {}
        for node in self.meta.get("nodes", []):
            if self._running(node):
                try:
                    namespaces[os.readlink("/proc/%d/ns/pid" % node["init_pid"])] = node["name"]
                except OSError:
                    pass
        usage = {name: 0 for name in namespaces.values()}
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                name = namespaces.get(os.readlink("/proc/%s/ns/pid" % pid))
                if name is None:
                    continue
                with open("/proc/%s/smaps_rollup" % pid) as handle:
                    for line in handle:
                        if line.startswith("Pss:"):
                            usage[name] += int(line.split()[1])
                            break
            except OSError:                                  # ended meanwhile, or a zombie (no smaps)
                pass
        return usage

    def close_connections(self):
        """Ask every SSH ControlPersist master of this fleet to exit (all at once)."""
        if not os.path.isdir(self.control_path_dir):
            return
        asked = [subprocess.Popen(["ssh", "-o", "ControlPath=%s" % os.path.join(self.control_path_dir, entry),
                                   "-O", "exit", "fleet"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
                 for entry in os.listdir(self.control_path_dir)]
        for process in asked:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def running_node(self, name):
        node = self.node(name)
        if not self._running(node):
            raise FleetError("node %s is not running" % name)
        return node

    def _running(self, node):
        pid = node.get("init_pid")
        return bool(pid) and _alive(pid) and _start_time(pid) == node.get("init_start")

    def _save(self):
        _write(self.meta_path, json.dumps(self.meta, indent=2) + "\n", 0o600)


# -- small helpers ---------------------------------------------------------
def _keygen(path, comment):
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", path], check=True)


def _keygen_all(keys, at_once=16):
    """ssh-keygen for every (path, comment), a few at a time."""
    for start in range(0, len(keys), at_once):
        running = [(subprocess.Popen(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", path],
                                     stdin=subprocess.DEVNULL), path) for path, comment in keys[start:start + at_once]]
        for process, path in running:
            if process.wait() != 0:
                raise FleetError("ssh-keygen failed for %s" % path)


def _listening():
    """{(address, port): {socket inodes}} of the IPv4 TCP sockets listening in this network namespace."""
    found = {}
    with open("/proc/net/tcp") as handle:
        next(handle)
        for line in handle:
            fields = line.split()
            if fields[3] != "0A":                                   # TCP_LISTEN
                continue
            address, port = fields[1].split(":")
            # The address is the raw (network order) 32-bit value printed as a native integer.
            address = ".".join(str(byte) for byte in int(address, 16).to_bytes(4, sys.byteorder))
            found.setdefault((address, int(port, 16)), set()).add(fields[9])
    return found


def _sockets_of_children(pid):
    """The socket inodes held by the children of pid (a node's init: its sshd)."""
    inodes = set()
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as handle:
            children = handle.read().split()
    except OSError:
        return inodes
    for child in children:
        try:
            for fd in os.listdir("/proc/%s/fd" % child):
                target = os.readlink("/proc/%s/fd/%s" % (child, fd))
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except OSError:
            pass
    return inodes


def _check_memory(count):
    available = _meminfo("MemAvailable")
    if available is not None and count * NODE_MEMORY_KIB > available // MEMORY_SHARE:
        raise FleetError("%d nodes do not fit in memory: %d MiB at %d MiB per node, more than a quarter of the "
                         "%d MiB available; at most %d nodes here" % (
                             count, count * NODE_MEMORY_KIB // 1024, NODE_MEMORY_KIB // 1024, available // 1024,
                             available // MEMORY_SHARE // NODE_MEMORY_KIB))


def _meminfo(field):
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _ended(process):
    """-1 when process has ended (for _wait: a true value that is no pid)."""
    return -1 if process.poll() is not None else None


def _write(path, text, mode):
    temporary = path + ".tmp"
    with open(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode), "w") as handle:
        handle.write(text)
    os.replace(temporary, path)


def _wait(probe, what, timeout=20.0):
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise FleetError("timed out waiting for %s" % what)
        time.sleep(0.05)


def _only_child(pid):
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as handle:
            children = handle.read().split()
    except OSError:
        return None
    return int(children[0]) if children else None


def _complete_line(path):
    with open(path) as handle:
        text = handle.read()
    return text.strip() if text.endswith("\n") else None


def _start_time(pid):
    try:
        with open("/proc/%d/stat" % pid, "rb") as handle:
            return int(handle.read().rsplit(b")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def _alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


def _reap(pid, timeout=10.0):
    """Wait for a process this module started in an earlier call (not our child then: poll)."""
    try:
        os.waitpid(pid, 0)
        return
    except ChildProcessError:
        pass
    _wait(lambda: not _alive(pid) or _zombie(pid), "process %d to end" % pid, timeout)


def _zombie(pid):
    try:
        with open("/proc/%d/stat" % pid, "rb") as handle:
            return handle.read().rsplit(b")", 1)[1].split()[0] == b"Z"
    except OSError:
        return True


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", required=True, help="the fleet directory")
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="create the keys and inventory, start every node")
    up.add_argument("--nodes", type=int, default=4)
    up.add_argument("--paramiko", action="append", default=[], metavar="NODE",
                    help="reach NODE with ansible_connection: paramiko_ssh")
    up.add_argument("--port", type=int, default=2222)
    up.add_argument("--first-address", type=int, default=10, help="node1 listens on 127.0.0.N")
    zombies = commands.add_parser("zombies", help="start a parent holding COUNT zombies inside NODE")
    zombies.add_argument("node")
    zombies.add_argument("count", type=int)
    for name in ("stop", "start"):
        commands.add_parser(name, help="%s one node" % name).add_argument("node")
    commands.add_parser("down", help="stop every node and close SSH masters")
    commands.add_parser("env", help="print the environment for ansible against the fleet")
    commands.add_parser("memory", help="each running node's memory (PSS of its processes, KiB) and the total")
    args = parser.parse_args(argv)
    fleet = Fleet(args.dir)
    try:
        if args.command == "up":
            fleet.create(args.nodes, paramiko=args.paramiko, port=args.port, first_address=args.first_address)
            print(fleet.inventory)
        elif args.command == "zombies":
            print(" ".join(map(str, fleet.zombies(args.node, args.count))))
        elif args.command == "stop":
            fleet.stop(args.node)
        elif args.command == "start":
            fleet.start(args.node)
        elif args.command == "down":
            fleet.down()
        elif args.command == "memory":
            usage = fleet.memory()
            for name in fleet.names:
                if name in usage:
                    print("%s %d KiB" % (name, usage[name]))
            if usage:
                print("total %d KiB for %d nodes, %d KiB per node" % (
                    sum(usage.values()), len(usage), sum(usage.values()) / len(usage)))
        elif args.command == "env":
            for key, value in fleet.env().items():
                print("export %s=%s" % (key, value))
    except (FleetError, OSError, subprocess.SubprocessError) as error:
        print("fleet: %s" % error, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
