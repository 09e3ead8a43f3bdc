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
# Python: undefined names, unused imports, syntax (ruff's default rules). Modules import after their
# DOCUMENTATION strings, as Ansible's modules do (E402).
ruff check --isolated --select E4,E7,E9,F --ignore E402 --line-length 120 module_utils library plugins tests bench roles
