#!/usr/bin/env bash
# Runs every test on a fresh machine: installs what the tests need (Debian's
# Chromium; a Python virtual environment with DuckDB, pyarrow, pandas,
# pytest, Playwright, moto's S3 server...), builds wh once with every
# feature in the test profile (dependencies at opt-level 1, see
# Cargo.toml), runs the Rust tests (one integration-test binary), then
# opens the marts with those real Parquet readers, the docs site in the
# real browser, and builds on a real Ballista cluster of wh's own nodes;
# then builds the docs book with mdBook.
#
# In CI (CI=true) the build and the virtual environment live outside the
# clone, in ~/.cache/wh/, so that a second run on the same machine reuses
# them; elsewhere they are ./target (or $CARGO_TARGET_DIR) and ./.venv.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=.venv
if [ "${CI:-}" = true ]; then
  cache="${XDG_CACHE_HOME:-$HOME/.cache}/wh"
  export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$cache/target}"
  venv="$cache/venv"
fi
target_dir="${CARGO_TARGET_DIR:-$PWD/target}"
started=$(date +%s)
took() { echo "scripts/test.sh: $1 took $(($(date +%s) - $2)) s" >&2; }

# The test tools install while cargo builds (they wait on the network and
# the disk, cargo on the cores).
install_tools() {
  if ! command -v chromium >/dev/null 2>&1; then
    local sudo=""
    [ "$(id -u)" = 0 ] || sudo=sudo
    $sudo apt-get update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  fi
  if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
  fi
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r tests/readers/requirements.txt
}
install_tools > .test-tools.log 2>&1 &
tools=$!

# First wh and wh-datagen (where the build's time goes:
# cargo-timings/cargo-timing.html in the target directory): the Python
# tests start on them while the test binaries build.
step=$(date +%s)
cargo build --all-features --bins --timings
took "the build of wh" "$step"

if ! wait "$tools"; then
  cat .test-tools.log >&2
  echo "error: installing the test tools failed (see above)" >&2
  exit 1
fi

# The Python tests run beside the Rust tests' build and run: they spend
# much of their time waiting on wh processes, servers and sleeps, so
# together they take less than one after the other. Their output follows
# the Rust tests'.
step=$(date +%s)
WH_BIN="$target_dir/debug/wh" "$venv/bin/python" -m pytest -q --durations=15 tests/readers > .pytest.log 2>&1 &
pytest=$!
rust=0
cargo test --all-features --no-run || rust=$?
took "the test binaries' build" "$step"

# mdBook for the docs book, pinned, built while the tests run (after the
# build, so that it does not slow DataFusion's), in its own target folder
# so that it never waits on the test build's lock; kept in the cache in CI.
# Unoptimized (--debug): 140 CPU-seconds to build instead of 250, taken
# from the tests it runs beside, for a book that then builds in 1 s
# instead of 0.2 s.
tools_dir="$target_dir/tools"
mdbook="$tools_dir/bin/mdbook"
if [ ! -x "$mdbook" ]; then
  CARGO_TARGET_DIR="$tools_dir/build" cargo install --quiet --locked --debug mdbook --version 0.5.4 \
    --no-default-features --features search --root "$tools_dir" > .mdbook-install.log 2>&1 &
  mdbook_install=$!
fi

[ "$rust" != 0 ] || cargo test --all-features || rust=$?
took "the Rust tests" "$step"
python=0
wait "$pytest" || python=$?
cat .pytest.log
took "the Python tests (beside the Rust tests)" "$step"
if [ "$rust" != 0 ] || [ "$python" != 0 ]; then
  echo "error: the Rust tests exited $rust, the Python tests $python" >&2
  exit 1
fi

step=$(date +%s)
if [ -n "${mdbook_install:-}" ] && ! wait "$mdbook_install"; then
  cat .mdbook-install.log >&2
  echo "error: installing mdbook failed (see above)" >&2
  exit 1
fi
"$mdbook" build docs
took "the docs book (its links: the docs integration test)" "$step"
took "everything" "$started"
