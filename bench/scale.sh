#!/usr/bin/env bash
# How `wh compile` and `wh ls` grow with the number of models: synthetic
# layered projects (bench/synthetic_project.py) of 1,000 and 10,000 models,
# release build, medians of RUNS runs (default 5) of the whole process.
#   bench/scale.sh
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${RUNS:-5}"
source bench/common.sh
declare -A compile ls
for n in 1000 10000; do
  project="$PWD/bench/data/synthetic-$n"
  rm -rf "$project"
  python3 bench/synthetic_project.py "$n" "$project"
  compile[$n]=$(python3 bench/measure.py "$runs" -- target/release/wh compile --quiet --project-dir "$project")
  ls[$n]=$(python3 bench/measure.py "$runs" -- target/release/wh ls --project-dir "$project")
done
python3 - "${compile[1000]}" "${ls[1000]}" "${compile[10000]}" "${ls[10000]}" <<'PY'
import json, sys
c1, l1, c10, l10 = (json.loads(a) for a in sys.argv[1:5])
for name, a, b in (("wh compile", c1, c10), ("wh ls     ", l1, l10)):
    print(f"{name}: 1,000 models {a['wall_s']:.3f}s ({a['wall_s'] / 1000 * 1e6:.0f} us/model), "
          f"10,000 models {b['wall_s']:.3f}s ({b['wall_s'] / 10000 * 1e6:.0f} us/model), "
          f"growth x{b['wall_s'] / a['wall_s']:.1f} for x10 models; peak RSS {a['peak_rss_mb']:.0f} / {b['peak_rss_mb']:.0f} MB")
PY
