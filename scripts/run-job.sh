#!/usr/bin/env bash
# The main job on this machine, as root: creates the controller's virtual
# environment, installs the pinned requirements and runs the scheduled
# playbook against the embedded default inventory (localhost).
#   bash scripts/run-job.sh [ansible-playbook arguments, e.g. --check or -e @cleaner.yml]
set -euo pipefail
cd "$(dirname "$0")/.."
if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c 'import ensurepip' >/dev/null 2>&1; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-venv >/dev/null
fi
[ -x .venv/bin/ansible-playbook ] || python3 -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check -r requirements.txt
exec .venv/bin/ansible-playbook playbooks/site.yml "$@"
