#!/usr/bin/env bash
# Measures a release `wh build` of the example warehouse at each scale:
# median wall time, CPU time and peak RSS over RUNS runs (default 3).
# Raw data is generated once per scale into bench/data/ (git-ignored).
#   bench/build_times.sh            # scales 1 and 10
#   SCALES="1 10 30" RUNS=5 bench/build_times.sh
set -euo pipefail
cd "$(dirname "$0")/.."
scales="${SCALES:-1 10}"
runs="${RUNS:-3}"
cargo build --release --bins --quiet
for scale in $scales; do
  raw="$PWD/bench/data/raw-$scale"
  if [ ! -f "$raw/order_items.parquet" ]; then
    target/release/wh-datagen --scale "$scale" --seed 42 --out "$raw"
  fi
  project="$PWD/bench/data/project-$scale"
  rm -rf "$project"
  mkdir -p "$project"
  cp -r wh_project.yml sources.yml models macros "$project/"
  result=$(python3 bench/measure.py "$runs" -- target/release/wh build --quiet \
    --project-dir "$project" --vars "{raw_root: '$raw'}")
  echo "scale $scale: $result"
done
