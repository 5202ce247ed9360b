#!/usr/bin/env bash
# Runs every test on a fresh machine: installs what the tests need (Debian's
# Chromium; a Python virtual environment with DuckDB, pyarrow, pandas,
# pytest and Playwright; Ballista's scheduler and executor), runs the Rust
# tests, then opens the marts with those real Parquet readers, the docs
# site in the real browser, and builds on a real Ballista cluster.
set -euo pipefail
cd "$(dirname "$0")/.."

# A real browser for the docs-site test: Debian's Chromium.
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    sudo apt-get update -qq
    sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  fi
fi

venv=.venv
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r tests/readers/requirements.txt

# Ballista's scheduler and executor binaries (crates.io) for the test of a
# real cluster on loopback; built once into .tools/ballista, alongside the
# Rust tests (two builds keep both cores busy where one waits on a crate).
# At opt-level 1, which builds faster: the tests' data is small
# (bench/ballista.sh wants them at the default 3).
BALLISTA_OPT_LEVEL="${BALLISTA_OPT_LEVEL:-1}" scripts/install-ballista.sh > .tools-install.log 2>&1 &
install_pid=$!

# cargo test also builds target/debug/wh and wh-datagen, which the reader tests use.
cargo test --all-targets

if ! wait "$install_pid"; then
  cat .tools-install.log >&2
  echo "error: installing Ballista's binaries failed (scripts/install-ballista.sh)" >&2
  exit 1
fi

target_dir="${CARGO_TARGET_DIR:-$PWD/target}"
WH_BIN="$target_dir/debug/wh" WH_REQUIRE_BALLISTA=1 "$venv/bin/python" -m pytest -q tests/readers
