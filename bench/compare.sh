#!/usr/bin/env bash
# wh against DuckDB on the example warehouse, at each scale: the same
# models' SQL (wh's compiled SQL, run by DuckDB through bench/duckdb_build.py)
# writing the same Parquet files. Reports medians over RUNS runs (default 3)
# of wall time, CPU time and peak RSS for `wh run` (models only), `wh build`
# (models + assertions) and DuckDB, and the ratio wh/DuckDB.
#   bench/compare.sh                    # scales 1 and 10
#   SCALES="1 10 30" RUNS=5 bench/compare.sh
set -euo pipefail
cd "$(dirname "$0")/.."
scales="${SCALES:-1 10}"
runs="${RUNS:-3}"
source bench/common.sh
for scale in $scales; do
  raw=$(raw_data "$scale")
  project=$(fresh_project "project-$scale")
  vars="{raw_root: '$raw'}"
  target/release/wh compile --quiet --project-dir "$project" --vars "$vars"
  # The SPEC models, as DuckDB builds them: snapshots (history, no one-shot
  # SQL) and what reads them are left out; --full-refresh so that every run
  # builds everything (an unchanged rebuild reuses, incremental models merge).
  only=(--full-refresh --exclude "config.materialized:snapshot+")
  run=$(python3 bench/measure.py "$runs" -- target/release/wh run --quiet "${only[@]}" --project-dir "$project" --vars "$vars")
  build=$(python3 bench/measure.py "$runs" -- target/release/wh build --quiet "${only[@]}" --project-dir "$project" --vars "$vars")
  duck=$(python3 bench/measure.py "$runs" -- "$venv/bin/python" bench/duckdb_build.py "$project" "$raw" "$project/duckdb_warehouse")
  python3 - "$scale" "$run" "$build" "$duck" <<'PY'
import json, sys
scale = sys.argv[1]
run, build, duck = (json.loads(a) for a in sys.argv[2:5])
for name, r in (("wh run  ", run), ("wh build", build), ("duckdb  ", duck)):
    print(f"scale {scale} {name}: wall {r['wall_s']:.2f}s  cpu {r['cpu_s']:.2f}s  peak RSS {r['peak_rss_mb']:.0f} MB")
print(f"scale {scale} assertion phase / model phase (wh build - wh run) / wh run: {(build['wall_s'] - run['wall_s']) / run['wall_s']:.2f}")
print(f"scale {scale} wall wh run/duckdb {run['wall_s'] / duck['wall_s']:.2f}, wh build/duckdb {build['wall_s'] / duck['wall_s']:.2f}; "
      f"peak RSS wh build/duckdb {build['peak_rss_mb'] / duck['peak_rss_mb']:.2f}")
PY
done
