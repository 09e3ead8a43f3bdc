#!/usr/bin/env bash
# Every benchmark in one run, after the test set-up (bash scripts/test.sh installs what they use):
#   bash bench/run.sh                   # every benchmark; starts and stops containerd and dockerd
#   bash bench/run.sh --no-containers   # all but attribution.py, and no container daemon touched
# Prints Markdown tables with medians and ratios measured side by side; no timed assertions.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
containers=true
case "${1:-}" in
  --no-containers) containers=false ;;
  "") ;;
  *) echo "usage: bash bench/run.sh [--no-containers]" >&2; exit 2 ;;
esac
if $containers; then
  trap 'bash scripts/test-daemons.sh stop >/dev/null' EXIT
  bash scripts/test-daemons.sh start >/dev/null
fi
echo "# zombie-cleaner benchmarks: $(date -u +%F), $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f", $2/1048576}' /proc/meminfo) GiB, $(uname -r), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
echo
python bench/scan_scale.py
if $containers; then
  python bench/attribution.py
else
  echo "(attribution.py skipped: --no-containers)"
  echo
fi
python bench/memory.py
python bench/module_run.py
python bench/fleet_cost.py
python bench/reap_stop.py
