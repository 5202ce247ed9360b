# Shared set-up of the benchmark scripts (sourced from the repository root):
# DuckDB in bench/.venv, the release binaries, and the generated raw data
# and a copy of the example project per scale.
venv=bench/.venv
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check duckdb==2.0.0
# WH_FEATURES: optional features to build in (bench/ballista.sh: ballista).
if [ -z "${WH_BIN:-}" ]; then
  cargo build --release --bins --quiet ${WH_FEATURES:+--features "$WH_FEATURES"}
fi

# raw_data SCALE: prints the folder of the raw data at SCALE (seed 42), made once.
raw_data() {
  local raw="$PWD/bench/data/raw-$1"
  if [ ! -f "$raw/order_items.parquet" ]; then
    target/release/wh-datagen --scale "$1" --seed 42 --out "$raw" >&2
  fi
  echo "$raw"
}

# fresh_project NAME: prints a new copy of the example project under bench/data/.
fresh_project() {
  local project="$PWD/bench/data/$1"
  rm -rf "$project"
  mkdir -p "$project"
  cp -r wh_project.yml sources.yml models macros snapshots "$project/"
  echo "$project"
}
