#!/usr/bin/env bash
# Identity resolution of the customer data platform (models/cdp): for each
# scale (default "1 10"), generates the four sources and the answer file
# once (bench/data/cdp-SCALE), builds the CDP models with the release `wh
# build --select +tag:cdp` RUNS times (default 3, median reported) and
# reports pairwise precision and recall against the answer file.
#   bench/cdp.sh            # scales 1 and 10
#   SCALES="1 10 30" bench/cdp.sh
set -euo pipefail
cd "$(dirname "$0")/.."
scales="${SCALES:-1 10}"
runs="${RUNS:-3}"
source bench/common.sh
for scale in $scales; do
  data="$PWD/bench/data/cdp-$scale"
  if [ ! -f "$data/cdp_truth.parquet" ]; then
    target/release/wh-datagen --cdp --scale "$scale" --seed 42 --out "$data" >&2
  fi
  project=$(fresh_project "cdp-project-$scale")
  cp -r data_tests "$project/"
  vars="{cdp_root: '$data'}"
  timing=$(python3 bench/measure.py "$runs" -- target/release/wh build --quiet --full-refresh \
    --select +tag:cdp --project-dir "$project" --vars "$vars")
  "$venv/bin/python" - "$scale" "$timing" "$data" "$project" <<'PY'
import json, sys
import duckdb
scale, timing, data, project = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3], sys.argv[4]
con = duckdb.connect()
records = con.execute(f"select count(*) from '{data}/cdp_truth.parquet'").fetchone()[0]
tp, predicted, true = con.execute(f"""
    with t as (
        select case source when 'crm_customers' then 'crm:' when 'marketing_leads' then 'lead:'
                           when 'web_events' then 'web:' else 'pos:' end || record_id as record_key, person_id
        from '{data}/cdp_truth.parquet'),
    j as (select t.person_id, p.profile_id
          from t join '{project}/warehouse/cdp/identity/cdp_record_profiles.parquet' p using (record_key)),
    cells as (select count(*) as n from j group by person_id, profile_id),
    profiles as (select count(*) as n from j group by profile_id),
    people as (select count(*) as n from j group by person_id)
    select (select sum(n * (n - 1) / 2) from cells), (select sum(n * (n - 1) / 2) from profiles),
           (select sum(n * (n - 1) / 2) from people)""").fetchone()
print(f"scale {scale}: {records} records, build {timing['wall_s']:.2f}s wall, {timing['cpu_s']:.2f}s cpu, "
      f"peak RSS {timing['peak_rss_mb']:.0f} MB; precision {tp / predicted:.5f}, recall {tp / true:.5f}")
PY
done
