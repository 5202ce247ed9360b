#!/usr/bin/env bash
# Runs every test on a fresh machine: installs what the tests need (a Python
# virtual environment with DuckDB, pyarrow, pandas and pytest), runs the
# Rust tests, then opens the marts with those real Parquet readers.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=.venv
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r tests/readers/requirements.txt

# cargo test also builds target/debug/wh and wh-datagen, which the reader tests use.
cargo test --all-targets

target_dir="${CARGO_TARGET_DIR:-$PWD/target}"
WH_BIN="$target_dir/debug/wh" "$venv/bin/python" -m pytest -q tests/readers
