#!/usr/bin/env bash
# wh against DuckDB on the example warehouse, at each scale: the same
# models' SQL (wh's compiled SQL, run by DuckDB through bench/duckdb_build.py)
# writing the same Parquet files. Reports medians over RUNS runs (default 3)
# of wall time, CPU time and peak RSS for `wh run` (models only), `wh build`
# (models + assertions) and DuckDB, and the ratio wh/DuckDB. The three are
# interleaved run by run, so that a noisy machine slows each alike. At the
# largest scale, one more `wh build --memory-limit $LIMIT` (default 1GB)
# reports its peak RSS and what it spilled, and its marts are compared
# with the unlimited build's, row by row.
#   bench/compare.sh                    # scales 1, 10 and 30
#   SCALES="1 10" RUNS=5 bench/compare.sh
set -euo pipefail
cd "$(dirname "$0")/.."
scales="${SCALES:-1 10 30}"
limit="${LIMIT:-1GB}"
runs="${RUNS:-3}"
source bench/common.sh
for scale in $scales; do
  raw=$(raw_data "$scale")
  project=$(fresh_project "project-$scale")
  vars="{raw_root: '$raw'}"
  target/release/wh compile --quiet --project-dir "$project" --vars "$vars"
  # The SPEC models, as DuckDB builds them: snapshots (history, no one-shot
  # SQL) and what reads them are left out, and so is the customer data
  # platform (tag cdp), which is not in the SPEC; --full-refresh so that
  # every run builds everything (an unchanged rebuild reuses, incremental
  # models merge).
  only=(--full-refresh --exclude "config.materialized:snapshot+" "tag:cdp")
  wh=(--quiet "${only[@]}" --project-dir "$project" --vars "$vars")
  all=$(python3 bench/measure.py "$runs" --interleave \
    -- target/release/wh run "${wh[@]}" \
    -- target/release/wh build "${wh[@]}" \
    -- "$venv/bin/python" bench/duckdb_build.py "$project" "$raw" "$project/duckdb_warehouse")
  run=$(echo "$all" | sed -n 1p); build=$(echo "$all" | sed -n 2p); duck=$(echo "$all" | sed -n 3p)
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
# The largest scale once more under a memory limit: same results, spilled.
scale="${scales##* }"
project="$PWD/bench/data/project-$scale"
vars="{raw_root: '$(raw_data "$scale")'}"
cp -r "$project/warehouse" "$project/warehouse-unlimited"
limited=$(python3 bench/measure.py 1 --stderr "$project/limited.log" -- target/release/wh build "${only[@]}" \
  --memory-limit "$limit" --project-dir "$project" --vars "$vars")
echo "scale $scale wh build --memory-limit $limit: $(echo "$limited" | python3 -c "import json, sys; r = json.load(sys.stdin); print('wall %.2fs  cpu %.2fs  peak RSS %.0f MB' % (r['wall_s'], r['cpu_s'], r['peak_rss_mb']))")"
grep "spilled to disk\|nothing spilled" "$project/limited.log" | sed "s/^/scale $scale wh build --memory-limit $limit: /"
"$venv/bin/python" bench/same_tables.py "$project/warehouse-unlimited" "$project/warehouse"
rm -rf "$project/warehouse-unlimited"
