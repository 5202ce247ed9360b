#!/usr/bin/env bash
# The example warehouse built by the local engine and on Ballista, on this
# machine: Ballista's in-process cluster (--engine ballista) and a real
# cluster of wh's own nodes on loopback (`wh cluster scheduler` and two
# `wh cluster executor` processes, the same release binary). Medians of RUNS runs (default 3), interleaved,
# of `wh build --full-refresh` (no snapshots, no customer data platform,
# as bench/compare.sh), at each of SCALES (default "10 30"). Wall time is
# wh's; peak RSS is wh's own process (the executors' is not counted).
# WH_BIN picks the wh binary (default target/release/wh).
#   bench/ballista.sh
set -euo pipefail
cd "$(dirname "$0")/.."
scales="${SCALES:-10 30}"
runs="${RUNS:-3}"
WH_FEATURES="${WH_FEATURES:-ballista}"
source bench/common.sh
wh="${WH_BIN:-$PWD/target/release/wh}"

# Free ports on loopback: the scheduler's, and three per executor.
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
port=$(free_port)
logs="$PWD/bench/data/ballista-logs"
rm -rf "$logs"; mkdir -p "$logs"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
"$wh" cluster scheduler --bind "127.0.0.1:$port" >"$logs/scheduler.log" 2>&1 &
pids+=($!)
for i in 0 1; do
  "$wh" cluster executor --scheduler "df://127.0.0.1:$port" --slots 32 --work-dir "$logs/work$i" \
    --port "$(free_port)" --grpc-port "$(free_port)" >"$logs/executor$i.log" 2>&1 &
  pids+=($!)
done
for i in 0 1; do
  for _ in $(seq 300); do
    grep -q "wh cluster executor: registered" "$logs/executor$i.log" && break
    sleep 0.2
  done
done

for scale in $scales; do
  raw=$(raw_data "$scale")
  vars="{raw_root: '$raw'}"
  only=(--quiet --full-refresh --exclude "config.materialized:snapshot+" "tag:cdp" --vars "$vars")
  declare -A project
  for engine in local standalone cluster; do
    project[$engine]=$(fresh_project "ballista-$engine-$scale")
  done
  all=$(python3 bench/measure.py "$runs" --interleave \
    -- "$wh" build "${only[@]}" --project-dir "${project[local]}" \
    -- "$wh" build "${only[@]}" --project-dir "${project[standalone]}" --engine ballista \
    -- "$wh" build "${only[@]}" --project-dir "${project[cluster]}" --engine ballista \
         --scheduler "df://127.0.0.1:$port")
  # The three warehouses hold the same tables, row for row.
  "$venv/bin/python" bench/same_tables.py "${project[local]}/warehouse" "${project[standalone]}/warehouse" >&2
  "$venv/bin/python" bench/same_tables.py "${project[local]}/warehouse" "${project[cluster]}/warehouse" >&2
  python3 - "$scale" "$all" <<'PY'
import json, sys
scale = sys.argv[1]
local, standalone, cluster = (json.loads(l) for l in sys.argv[2].splitlines())
for name, r in (("local     ", local), ("in-process", standalone), ("cluster   ", cluster)):
    print(f"scale {scale} {name} wall {r['wall_s']:.2f}s cpu {r['cpu_s']:.2f}s wh peak RSS {r['peak_rss_mb']:.0f} MB "
          f"(x{r['wall_s'] / local['wall_s']:.2f} of local)")
PY
done
