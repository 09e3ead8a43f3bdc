#!/usr/bin/env bash
# Start or stop the container daemons the integration tests use: containerd
# (default socket, so bundles land in /run/containerd as on a real node) and
# dockerd on top of it (namespace moby). podman needs no daemon; its test
# containers are removed here too. Daemons that already answer are used
# as they are and left running; only what this script started is stopped.
# containerd runs with the project's scripts/containerd-test.toml (its CRI
# plugin serves the real test pods; /etc is never edited). The pods' images
# are built and imported by the tests' cri_runtime fixture.
#   scripts/test-daemons.sh start|stop
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
RUN_DIR=/run/zombie-cleaner-test
LOG_DIR=${ZC_TEST_LOGS:-/var/tmp/zombie-cleaner-test/logs}
CONTAINERD_SOCK=/run/containerd/containerd.sock
CONTAINERD_CONFIG="$REPO/scripts/containerd-test.toml"
mkdir -p "$RUN_DIR" "$LOG_DIR"

wait_until() {  # seconds, description, command...
  local seconds=$1 what=$2; shift 2
  for _ in $(seq $((seconds * 10))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "test-daemons: $what did not come up within ${seconds}s" >&2
  return 1
}

start() {
  if ctr version >/dev/null 2>&1; then
    echo "test-daemons: using the containerd already running"
  else
    containerd -c "$CONTAINERD_CONFIG" >"$LOG_DIR/containerd.log" 2>&1 &
    echo $! >"$RUN_DIR/containerd.pid"
    wait_until 30 containerd ctr version || { tail -20 "$LOG_DIR/containerd.log" >&2; exit 1; }
  fi
  if /usr/bin/docker info >/dev/null 2>&1; then
    echo "test-daemons: using the dockerd already running"
  else
    # No bridge and no iptables: the test containers run with --network none.
    dockerd --containerd="$CONTAINERD_SOCK" --bridge=none --iptables=false --ip6tables=false \
      >"$LOG_DIR/dockerd.log" 2>&1 &
    echo $! >"$RUN_DIR/dockerd.pid"
    wait_until 60 dockerd /usr/bin/docker info || { tail -20 "$LOG_DIR/dockerd.log" >&2; exit 1; }
  fi
}

stop_pid_file() {  # name
  local file="$RUN_DIR/$1.pid" pid
  [ -f "$file" ] || return 0
  pid=$(cat "$file")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$file"
}

stop() {
  # Test containers first (labelled), so no shim outlives its daemon.
  if /usr/bin/docker info >/dev/null 2>&1; then
    ids=$(/usr/bin/docker ps -aq --filter label=zombie-cleaner-test)
    [ -z "$ids" ] || /usr/bin/docker rm -f $ids >/dev/null 2>&1 || true
  fi
  if command -v podman >/dev/null 2>&1; then
    ids=$(podman ps -aq --filter label=zombie-cleaner-test 2>/dev/null || true)
    [ -z "$ids" ] || podman rm -f -t 0 $ids >/dev/null 2>&1 || true
  fi
  if ctr version >/dev/null 2>&1; then
    # Real test pods through CRI first (stop, then remove each labelled sandbox, as the kubelet would);
    # the ctr loop below then only meets containers made with ctr.
    local python=python3
    [ -x "$REPO/.venv/bin/python" ] && python="$REPO/.venv/bin/python"
    PYTHONPATH="$REPO/tests" "$python" -m helpers.cri cleanup \
      || echo "test-daemons: the test pods could not be removed through CRI (see above)" >&2
    for ns in k8s.io zc-test; do
      for id in $(ctr -n "$ns" containers ls -q labels.zombie-cleaner-test==1 2>/dev/null); do
        ctr -n "$ns" task delete -f "$id" >/dev/null 2>&1 || true
        ctr -n "$ns" container delete "$id" >/dev/null 2>&1 || true
      done
    done
  fi
  local started_containerd=no
  [ -f "$RUN_DIR/containerd.pid" ] && started_containerd=yes
  stop_pid_file dockerd
  stop_pid_file containerd
  if [ "$started_containerd" = yes ]; then
    # Shims are detached from containerd; end the ones that served our socket.
    pkill -KILL -f "containerd-shim-runc-v2 .*-address $CONTAINERD_SOCK" 2>/dev/null || true
  fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
