"""PID 1 of one simulated node (run by fleet.py inside fresh PID, mount and UTS namespaces).

Gives the node its hostname and its own /run, starts OpenSSH sshd and reaps
orphans like any init. When sshd ends, or on SIGTERM, the node ends, and the
kernel kills everything left in its PID namespace.
    node_init.py <hostname> <sshd_config> <sshd log>
"""

import os
import signal
import socket
import subprocess
import sys


def main():
    hostname, sshd_config, log_path = sys.argv[1:4]
    socket.sethostname(hostname)
    # A private /run: sshd's privilege-separation directory, and no view of the
    # host's runtime sockets (/run/containerd, /run/docker.sock) from this node.
    subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=0755,size=16m", "tmpfs", "/run"], check=True)
    os.mkdir("/run/sshd", 0o755)
    with open(log_path, "ab") as log:
        sshd = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", sshd_config],
                                stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    signal.signal(signal.SIGTERM, lambda signum, frame: sshd.terminate())
    while True:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            return 0
        except InterruptedError:
            continue
        if pid == sshd.pid:
            return os.waitstatus_to_exitcode(status)


if __name__ == "__main__":
    sys.exit(main())
