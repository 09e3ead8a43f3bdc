"""PID 1 of one simulated node (run by fleet.py inside fresh PID, mount and UTS namespaces).

Gives the node its hostname and its own /run, starts OpenSSH sshd and reaps
orphans like any init. When sshd ends, or on SIGTERM, the node ends, and the
kernel kills everything left in its PID namespace.
    python3 -I -S node_init.py <hostname> <sshd_config> <sshd log>

Kept small: it runs once per node (a 100-node fleet runs 100 of them), so it
imports only what the interpreter has loaded already, os and _signal (the C
half of signal; the signal module adds enum and about 0.9 MiB per node), and
starts its commands with posix_spawn (subprocess adds about 1.2 MiB more).
"""

import _signal
import os
import sys


def spawn(argv, stdout=None):
    """Start argv (searched in PATH), stdin from /dev/null, stdout and stderr to the file stdout if given."""
    actions = [(os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0)]
    if stdout:
        actions += [(os.POSIX_SPAWN_OPEN, 1, stdout, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600),
                    (os.POSIX_SPAWN_DUP2, 1, 2)]
    return os.posix_spawnp(argv[0], argv, os.environ, file_actions=actions)


def main():
    hostname, sshd_config, log_path = sys.argv[1:4]
    # This UTS namespace's hostname (what sethostname(2) sets).
    with open("/proc/sys/kernel/hostname", "w") as handle:
        handle.write(hostname)
    # A private /run: sshd's privilege-separation directory, and no view of the
    # host's runtime sockets (/run/containerd, /run/docker.sock) from this node.
    mount = spawn(["mount", "-t", "tmpfs", "-o", "mode=0755,size=16m", "tmpfs", "/run"], stdout=log_path)
    if os.waitstatus_to_exitcode(os.waitpid(mount, 0)[1]) != 0:
        return 1
    os.mkdir("/run/sshd", 0o755)
    sshd = spawn(["/usr/sbin/sshd", "-D", "-e", "-f", sshd_config], stdout=log_path)
    _signal.signal(_signal.SIGTERM, lambda signum, frame: os.kill(sshd, _signal.SIGTERM))
    while True:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            return 0
        except InterruptedError:
            continue
        if pid == sshd:
            return os.waitstatus_to_exitcode(status)


if __name__ == "__main__":
    sys.exit(main())
