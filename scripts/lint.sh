#!/usr/bin/env bash
# Static checks: every module documents itself, every playbook parses, lint profiles pass.
set -euo pipefail
cd "$(dirname "$0")/.."
for module in library/*.py; do
  name=$(basename "$module" .py)
  ansible-doc -M library "$name" >/dev/null
done
for playbook in playbooks/*.yml; do
  ansible-playbook --syntax-check "$playbook" >/dev/null
done
yamllint -s .
ansible-lint --offline -q
