#!/usr/bin/env bash
# Rebuilds against a full build of the example warehouse, same data, one
# invocation: a full build (--full-refresh), an unchanged rebuild (every
# table reused), and a rebuild after the orders file is touched (staging,
# the incremental facts, which merge their changed orders, and everything
# downstream run again). Medians of RUNS runs (default 5).
#   bench/rebuild.sh                     # scales 1 and 10
#   SCALES=10 RUNS=3 bench/rebuild.sh
set -euo pipefail
cd "$(dirname "$0")/.."
scales="${SCALES:-1 10}"
runs="${RUNS:-5}"
cargo build --release --bins --quiet
wh="$PWD/target/release/wh"
for scale in $scales; do
  raw="$PWD/bench/data/raw-$scale"
  if [ ! -f "$raw/order_items.parquet" ]; then
    target/release/wh-datagen --scale "$scale" --seed 42 --out "$raw"
  fi
  project="$PWD/bench/data/rebuild-$scale"
  rm -rf "$project"
  mkdir -p "$project"
  cp -r wh_project.yml sources.yml models macros snapshots "$project/"
  args=(--quiet --project-dir "$project" --vars "{raw_root: '$raw'}")
  full=$(python3 bench/measure.py "$runs" -- "$wh" build --full-refresh "${args[@]}")
  unchanged=$(python3 bench/measure.py "$runs" -- "$wh" build "${args[@]}")
  touched=$(python3 bench/measure.py "$runs" -- sh -c 'touch "$0" && exec "$@"' "$raw/orders.parquet" "$wh" build "${args[@]}")
  python3 - "$scale" "$full" "$unchanged" "$touched" <<'PY'
import json, sys
scale = sys.argv[1]
full, unchanged, touched = (json.loads(a) for a in sys.argv[2:5])
for name, r in (("full build        ", full), ("unchanged rebuild ", unchanged), ("orders touched    ", touched)):
    print(f"scale {scale} {name}: wall {r['wall_s']:.3f}s  cpu {r['cpu_s']:.2f}s  peak RSS {r['peak_rss_mb']:.0f} MB"
          f"  ({r['wall_s'] / full['wall_s']:.2f} of the full build)")
PY
done
