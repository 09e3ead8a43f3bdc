#!/usr/bin/env python3
"""A test fleet on one machine, reached over real SSH.

Each node has its own PID, mount and UTS namespace (its own process table,
/proc, /run and hostname: a scan on node3 sees only node3's processes) and runs
OpenSSH sshd on its own loopback address. The fleet directory holds everything:
a client key, each node's host key, the known_hosts file the inventory uses
(host key checking stays on), the generated inventory and each node's files.

    fleet.py up      --dir D [--nodes 4] [--paramiko NODE ...] [--port 2222] [--first-address 10]
    fleet.py zombies --dir D NODE COUNT   # a parent holding COUNT zombies inside NODE
    fleet.py stop    --dir D NODE         # NODE becomes unreachable (its namespace ends)
    fleet.py start   --dir D NODE
    fleet.py down    --dir D              # nothing left running; files stay in D

Run ansible with the environment `env` prints (HOME inside D: paramiko reads
known_hosts only from ~/.ssh). Needs root, util-linux and openssh-server.
Standard library only.
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
        for path in (self.dir, self.home, os.path.join(self.home, ".ssh"), self.control_path_dir):
            os.makedirs(path, mode=0o700, exist_ok=True)
        if not os.path.exists(self.client_key):
            _keygen(self.client_key, "zombie-cleaner test fleet client")
        with open(self.client_key + ".pub") as handle:
            public_key = handle.read()
        _write(os.path.join(self.dir, "authorized_keys"), public_key, 0o600)
        nodes, known = [], []
        for index in range(count):
            name = "node%d" % (index + 1)
            address = "127.0.0.%d" % (first_address + index)
            directory = self.node_dir(name)
            os.makedirs(os.path.join(directory, "var"), mode=0o700, exist_ok=True)
            host_key = os.path.join(directory, "ssh_host_ed25519_key")
            if not os.path.exists(host_key):
                _keygen(host_key, name)
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
        for name in self.names:
            self.start(name)

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
        node = self.node(name)
        if node.get("init_pid") and _alive(node["init_pid"]):
            return
        directory = self.node_dir(name)
        with open(os.path.join(directory, "node.log"), "ab") as log:
            unshare = subprocess.Popen(
                ["unshare", "--pid", "--fork", "--kill-child", "--mount", "--mount-proc", "--uts",
                 sys.executable, NODE_INIT, name, os.path.join(directory, "sshd_config"),
                 os.path.join(directory, "sshd.log")],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
        node["unshare_pid"] = unshare.pid
        node["init_pid"] = _wait(lambda: _only_child(unshare.pid), "node %s's init" % name)
        node["init_start"] = _start_time(node["init_pid"])
        self._save()
        # Up when sshd answers with this node's host key.
        _wait(lambda: self._answers(node), "sshd of %s on %s:%d (see %s)" % (
            name, node["address"], node["port"], os.path.join(directory, "sshd.log")), timeout=30)

    def _answers(self, node):
        result = subprocess.run(
            ["ssh-keyscan", "-T", "2", "-t", "ed25519", "-p", str(node["port"]), node["address"]],
            capture_output=True, text=True)
        return node["address"] in result.stdout

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
        node = self.node(name)
        if self._running(node):
            os.kill(node["init_pid"], signal.SIGKILL)
        if node.get("unshare_pid"):
            _reap(node["unshare_pid"])
        node.pop("init_pid", None)
        node.pop("unshare_pid", None)
        self._save()

    def down(self):
        for name in self.names:
            self.stop(name)
        self.close_connections()

    def close_connections(self):
        """Ask every SSH ControlPersist master of this fleet to exit."""
        if not os.path.isdir(self.control_path_dir):
            return
        for entry in os.listdir(self.control_path_dir):
            subprocess.run(["ssh", "-o", "ControlPath=%s" % os.path.join(self.control_path_dir, entry),
                            "-O", "exit", "fleet"], capture_output=True, timeout=10)

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
        elif args.command == "env":
            for key, value in fleet.env().items():
                print("export %s=%s" % (key, value))
    except (FleetError, OSError, subprocess.SubprocessError) as error:
        print("fleet: %s" % error, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
