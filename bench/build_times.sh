#!/usr/bin/env bash
# Measures a release build of the example warehouse at each scale: median
# wall time, CPU time and peak RSS over RUNS runs (default 3) of
#   wh run    (models only), and
#   wh build  (models + write-audit-publish assertions),
# and the assertion phase as a ratio of the model phase:
#   (build - run) / run, from the medians of this same invocation.
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
  vars="{raw_root: '$raw'}"
  run=$(python3 bench/measure.py "$runs" -- target/release/wh run --quiet --project-dir "$project" --vars "$vars")
  build=$(python3 bench/measure.py "$runs" -- target/release/wh build --quiet --project-dir "$project" --vars "$vars")
  python3 - "$scale" "$run" "$build" <<'PY'
import json, sys
scale, run, build = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
for name, r in (("wh run  ", run), ("wh build", build)):
    print(f"scale {scale} {name}: wall {r['wall_s']:.2f}s  cpu {r['cpu_s']:.2f}s  peak RSS {r['peak_rss_mb']:.0f} MB  (median of {r['runs']})")
ratio = (build["wall_s"] - run["wall_s"]) / run["wall_s"]
print(f"scale {scale} assertion phase / model phase: {ratio:.2f}")
PY
done
