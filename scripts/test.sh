#!/usr/bin/env bash
# The whole test suite on a fresh Debian machine, as root: installs the system
# packages and the Python test environment, starts the daemons the tests use,
# runs lint and every test, and stops what it started.
#   bash scripts/test.sh [extra pytest arguments]
set -euo pipefail
cd "$(dirname "$0")/.."

# prometheus-node-exporter: the real textfile collector; prometheus: promtool for the rules;
# chromium: looks at the HTML report; openssh-server: sshd of each test fleet node.
APT_PACKAGES=(python3 python3-venv containerd runc docker.io podman busybox-static procps
              prometheus-node-exporter prometheus chromium openssh-server openssh-client)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "== installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

python3 -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check -r requirements-test.txt
export PATH="$PWD/.venv/bin:$PATH"

echo "== lint"
bash scripts/lint.sh

echo "== starting containerd and dockerd"
trap 'bash scripts/test-daemons.sh stop' EXIT
bash scripts/test-daemons.sh start

echo "== tests"
# Integration tests must not skip for lack of a runtime here: they fail instead.
export ZC_REQUIRE_RUNTIMES=1
python -m pytest -p no:cacheprovider -ra tests "$@"
