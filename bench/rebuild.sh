#!/usr/bin/env bash
# Rebuilds against a full build of the example warehouse, one invocation:
# a full build (--full-refresh), an unchanged rebuild (every table reused),
# a rebuild after the orders file is touched (staging and everything
# downstream run again; the incremental facts find no new rows), and
# rebuilds that alternate between the data and a copy with 1% of the order
# totals corrected (the facts merge those orders). Medians of RUNS runs
# (default 5).
#   bench/rebuild.sh                     # scales 1 and 10
#   SCALES=10 RUNS=3 bench/rebuild.sh
set -euo pipefail
cd "$(dirname "$0")/.."
scales="${SCALES:-1 10}"
runs="${RUNS:-5}"
source bench/common.sh
wh="$PWD/target/release/wh"
for scale in $scales; do
  raw=$(raw_data "$scale")
  project=$(fresh_project "rebuild-$scale")
  args=(--quiet --project-dir "$project" --vars "{raw_root: '$raw'}")
  full=$(python3 bench/measure.py "$runs" -- "$wh" build --full-refresh "${args[@]}")
  unchanged=$(python3 bench/measure.py "$runs" -- "$wh" build "${args[@]}")
  touched=$(python3 bench/measure.py "$runs" -- sh -c 'touch "$0" && exec "$@"' "$raw/orders.parquet" "$wh" build "${args[@]}")
  fixed="$PWD/bench/data/raw-$scale-corrected"
  if [ ! -f "$fixed/order_items.parquet" ]; then
    mkdir -p "$fixed"
    cp "$raw"/customers.parquet "$raw"/products.parquet "$raw"/order_items.parquet "$fixed/"
    "$venv/bin/python" -c "import duckdb, sys; duckdb.sql(f\"copy (select * replace (case when id % 100 = 7 then total_amount + 1 else total_amount end as total_amount) from '{sys.argv[1]}/orders.parquet') to '{sys.argv[2]}/orders.parquet' (format parquet)\")" "$raw" "$fixed"
  fi
  flip="$project/.flip"
  corrected=$(python3 bench/measure.py "$runs" -- sh -c '
    if [ -f "$0" ]; then rm "$0"; r="$1"; else touch "$0"; r="$2"; fi
    exec "$3" build --quiet --project-dir "$4" --vars "{raw_root: '"'"'$r'"'"'}"' "$flip" "$raw" "$fixed" "$wh" "$project")
  python3 - "$scale" "$full" "$unchanged" "$touched" "$corrected" <<'PY'
import json, sys
scale = sys.argv[1]
full, unchanged, touched, corrected = (json.loads(a) for a in sys.argv[2:6])
for name, r in (("full build        ", full), ("unchanged rebuild ", unchanged), ("orders touched    ", touched),
                ("1% orders changed ", corrected)):
    print(f"scale {scale} {name}: wall {r['wall_s']:.3f}s  cpu {r['cpu_s']:.2f}s  peak RSS {r['peak_rss_mb']:.0f} MB"
          f"  ({r['wall_s'] / full['wall_s']:.2f} of the full build)")
PY
done
