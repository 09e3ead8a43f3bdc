#!/usr/bin/env bash
# One scheduled run of the job, for cron and CI schedulers (no installs: run
# scripts/run-job.sh or `pip install -r requirements.txt` once beforehand).
#   scripts/scheduled-run.sh -i INVENTORY [more ansible-playbook arguments]
# The original design's environment overrides are read on the controller:
#   DRY_RUN=true|false  CONFIRM_COUNT=N  CHECK_INTERVAL=5m  LOG_LEVEL=info
# Runs never overlap: when the previous run still holds the lock, this one
# exits 0 with a message (a late run is better than two at once).
set -euo pipefail
cd "$(dirname "$0")/.."
lock="${ZOMBIE_CLEANER_LOCK:-/tmp/zombie-cleaner.lock}"
playbook="ansible-playbook"
[ -x .venv/bin/ansible-playbook ] && playbook=".venv/bin/ansible-playbook"
exec 9>>"$lock"
if ! flock -n 9; then
  echo "zombie-cleaner: the previous run still holds $lock; skipping this one" >&2
  exit 0
fi
echo "zombie-cleaner: $(date -u +%FT%TZ) site.yml DRY_RUN=${DRY_RUN:-} CONFIRM_COUNT=${CONFIRM_COUNT:-} $*"
exec "$playbook" playbooks/site.yml "$@"
