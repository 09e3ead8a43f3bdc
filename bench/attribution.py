"""Attribution cost: 2,000 zombies spread over real containerd and Docker containers. The whole scan
as the module runs it (attribution to shim, container and pod, pids cgroup numbers, confirmation;
check mode: no state written) against the plain /proc scan, interleaved in one run.

    python bench/attribution.py [--containers 8] [--zombies 2000] [--rounds 7]
Needs containerd and dockerd running (scripts/test-daemons.sh start).
"""

import argparse
import os
import sys
import tempfile

from common import ROOT, interleaved, line, median, process_count

sys.path.insert(0, os.path.join(ROOT, "tests"))
from helpers import containers  # noqa: E402
from helpers.zombies import wait_for, zombie_children  # noqa: E402
from ansible.module_utils.zombie_cleaner.observe import procfs, scan  # noqa: E402


def zombie_box(kind, count):
    # The children outlive the loop (sleep 3), so the shell has exec'd sleep, which never reaps,
    # before any of them exits: exactly `count` zombies (busybox sh would reap children that end sooner).
    command = ["/bin/sh", "-c", "i=0; while [ $i -lt %d ]; do /bin/sleep 3 & i=$((i+1)); done; "
               "exec /bin/sleep 100000" % count]
    box = (containers.CtrContainer if kind == "containerd" else containers.DockerContainer)(command=command)
    wait_for(lambda: len(zombie_children(box.init_pid)) == count, "%d zombies in %s" % (count, box.id), timeout=60)
    return box


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--containers", type=int, default=8)
    parser.add_argument("--zombies", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    containers.build_rootfs()
    containers.ensure_docker_image()
    per_box = args.zombies // args.containers
    boxes = []
    try:
        for index in range(args.containers):
            boxes.append(zombie_box("containerd" if index % 2 == 0 else "docker", per_box))
        with tempfile.TemporaryDirectory() as directory:
            options = scan.ScanOptions(state_path=os.path.join(directory, "state.json"), metrics_textfile_dir="")
            result = scan.run_scan(options, check_mode=True)
            attributed = result["container_zombie_count"]
            ids = {item["container_id"] for item in result["containers"]}
            assert all(box.id in ids for box in boxes), "a container was not attributed"
            times = interleaved([("plain scan", lambda: procfs.scan("/proc")),
                                 ("scan with attribution", lambda: scan.run_scan(options, check_mode=True))],
                                args.rounds)
        processes = process_count()
    finally:
        for box in boxes:
            box.remove()
    plain, full = median(times["plain scan"]), median(times["scan with attribution"])
    line("## Attribution: %d zombies in %d containers (containerd and Docker), %d processes, median of %d"
         % (attributed, len(boxes), processes, args.rounds))
    line("| method | median ms |")
    line("| --- | --- |")
    line("| plain scan | %.1f |" % (plain * 1e3))
    line("| scan with attribution | %.1f |" % (full * 1e3))
    line()
    line("| ratio | value |")
    line("| --- | --- |")
    line("| attributed/plain | %.2f |" % (full / plain))
    line()


if __name__ == "__main__":
    main()
