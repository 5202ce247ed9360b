#!/usr/bin/env bash
# How `wh compile` and `wh ls` grow with the number of models: synthetic
# layered projects (bench/synthetic_project.py: 1-3 refs per model, two
# tests per model in schema files, a var() in every 10th model, sources
# through external_location) of 1,000, 10,000 and 100,000 models, release
# build, medians of RUNS runs (default 5; 3 at 100,000) of the whole
# process, wall time, CPU time and peak RSS.
#   bench/scale.sh                       # SIZES="1000 10000" to change them
#   BASE=/path/to/older/wh bench/scale.sh  # the same runs of another binary
#                                          # (one after the other), and the ratios
#   WH_BIN=/path/to/wh bench/scale.sh      # time that binary, build nothing
# Each project is compiled once before it is timed (target/compiled exists,
# as on a developer's machine).
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${RUNS:-5}"
sizes="${SIZES:-1000 10000 100000}"
source bench/common.sh
wh="${WH_BIN:-${CARGO_TARGET_DIR:-$PWD/target}/release/wh}"
out="bench/results/scale.json"
echo "[" > "$out.tmp"
first=1
for n in $sizes; do
  project="$PWD/bench/data/synthetic-$n"
  rm -rf "$project"
  python3 bench/synthetic_project.py "$n" "$project"
  r=$runs
  [ "$n" -ge 100000 ] && r="${RUNS:-3}"
  for bin in "$wh" ${BASE:-}; do
    "$bin" compile --quiet --project-dir "$project"
  done
  for cmd in compile ls; do
    for bin in "$wh" ${BASE:-}; do
      flags=(--project-dir "$project")
      [ "$cmd" = compile ] && flags+=(--quiet)
      m=$(python3 bench/measure.py "$r" -- "$bin" "$cmd" "${flags[@]}")
      label=wh
      [ "$bin" != "$wh" ] && label=base
      [ $first = 1 ] || echo "," >> "$out.tmp"
      first=0
      echo "{\"models\": $n, \"command\": \"$cmd\", \"binary\": \"$label\", \"measure\": $m}" >> "$out.tmp"
    done
  done
done
echo "]" >> "$out.tmp"
mv "$out.tmp" "$out"
python3 - "$out" <<'PY'
import json, sys
rows = json.load(open(sys.argv[1]))
get = {(r["models"], r["command"], r["binary"]): r["measure"] for r in rows}
sizes = sorted({r["models"] for r in rows})
for cmd in ("compile", "ls"):
    for n in sizes:
        m = get[(n, cmd, "wh")]
        line = (f"wh {cmd:7} {n:>7,} models: {m['wall_s']:7.3f} s wall, {m['cpu_s']:7.3f} s CPU, "
                f"{m['peak_rss_mb']:6.0f} MB, {m['wall_s'] / n * 1e6:5.1f} us/model")
        base = get.get((n, cmd, "base"))
        if base:
            line += (f" | base {base['wall_s']:7.3f} s, {base['peak_rss_mb']:6.0f} MB"
                     f" (x{m['wall_s'] / base['wall_s']:.2f} time, x{m['peak_rss_mb'] / base['peak_rss_mb']:.2f} memory)")
        print(line)
PY
