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


ROOT_BASHRC = "/root/.bashrc"


def spawn(argv, stdout=None):
    """Start argv (searched in PATH), stdin from /dev/null, stdout and stderr to the file stdout if given."""
    actions = [(os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0)]
    if stdout:
        actions += [(os.POSIX_SPAWN_OPEN, 1, stdout, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600),
                    (os.POSIX_SPAWN_DUP2, 1, 2)]
    # Default dispositions in the child, as subprocess does (restore_signals): Python ignores SIGPIPE and
    # SIGXFSZ, and an ignored disposition survives exec into sshd and every session it starts.
    return os.posix_spawnp(argv[0], argv, os.environ, file_actions=actions, setsigdef=_RESETTABLE_SIGNALS)


# Every signal whose disposition can be set (not SIGKILL, SIGSTOP, or glibc's two internal real-time signals).
_RESETTABLE_SIGNALS = [number for number in range(1, _signal.NSIG)
                       if number not in (_signal.SIGKILL, _signal.SIGSTOP, 32, 33)]


def run(argv, log_path):
    """spawn and wait: argv's exit code."""
    return os.waitstatus_to_exitcode(os.waitpid(spawn(argv, stdout=log_path), 0)[1])


def main():
    hostname, sshd_config, log_path = sys.argv[1:4]
    # This UTS namespace's hostname (what sethostname(2) sets).
    with open("/proc/sys/kernel/hostname", "w") as handle:
        handle.write(hostname)
    # A private /run: sshd's privilege-separation directory, and no view of the
    # host's runtime sockets (/run/containerd, /run/docker.sock) from this node.
    if run(["mount", "-t", "tmpfs", "-o", "mode=0755,size=16m", "tmpfs", "/run"], log_path) != 0:
        return 1
    os.mkdir("/run/sshd", 0o755)
    # Root's shell start-up file is this machine's, not a node's: sshd runs every command through root's
    # shell, which reads ~/.bashrc (Debian's bash does under sshd). Here that is `pyenv init`, whose rehash
    # takes a lock file; a session killed with its node (stop, reset) left the lock behind, and every later
    # root shell on the machine waited 60 s for it. Empty inside the node (its own mount namespace).
    if os.path.isfile(ROOT_BASHRC) and run(["mount", "--bind", "/dev/null", ROOT_BASHRC], log_path) != 0:
        return 1
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
