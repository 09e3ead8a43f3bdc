#!/usr/bin/env bash
# Every benchmark in one run, after the test set-up (bash scripts/test.sh installs what they use):
#   bash bench/run.sh
# Prints Markdown tables with medians and ratios measured side by side; no timed assertions.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
trap 'bash scripts/test-daemons.sh stop >/dev/null' EXIT
bash scripts/test-daemons.sh start >/dev/null
echo "# zombie-cleaner benchmarks: $(date -u +%F), $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f", $2/1048576}' /proc/meminfo) GiB, $(uname -r)"
echo
python bench/scan_scale.py
python bench/attribution.py
python bench/memory.py
python bench/fleet_cost.py
python bench/reap_stop.py
