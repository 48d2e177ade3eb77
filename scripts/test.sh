#!/usr/bin/env bash
# Runs every test of teamsync. Installs the directory servers that the
# integration tests start (Debian packages) when they are missing, then runs
# unit, property and integration tests. Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/install-deps
exec cargo test --all-targets "$@"
