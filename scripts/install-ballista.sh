#!/usr/bin/env bash
# Installs Ballista's scheduler and executor (the crates.io binaries of the
# 55 line, with their published Cargo.lock) into .tools/ballista/bin, once:
# the real multi-process cluster that tests/readers/test_ballista_cluster.py
# and bench/ballista.sh start on loopback. Each binary builds DataFusion
# with its own features: about 40 minutes of release builds on 2 cores
# (scripts/test.sh runs this beside the Rust tests); later runs find them
# installed. BALLISTA_OPT_LEVEL (default 3, the release profile's) trades
# their speed for build time.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD/.tools/ballista"
if [ -x "$root/bin/ballista-scheduler" ] && [ -x "$root/bin/ballista-executor" ]; then
  exit 0
fi
CARGO_PROFILE_RELEASE_OPT_LEVEL="${BALLISTA_OPT_LEVEL:-3}" \
CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}/ballista-install" \
  cargo install --locked --quiet --root "$root" --version 55.0.0 ballista-scheduler ballista-executor
