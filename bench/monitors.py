"""How well the example project's sales monitors find injected anomalies,
and what monitoring costs a build.

usage: python bench/monitors.py [--wh PATH] [--seeds 2] [--drops 10,20,30,40,60] [--eval-days 56]
                                [--overhead-scale 1] [--out bench/results/monitors.json]

Detection: for each seed and drop size, wh-datagen writes a year of orders
(weekly seasonality, 15% trend) with drops injected on known days of the
evaluation window: whole orders on six days (for the total-revenue
monitor), one category's lines on six other days (for the per-category
monitor). The example is built once; then, day by day through the
evaluation window, `wh test --select daily_category_revenue` runs with
`as_of_date` the next day, so the monitors score that day exactly as a daily
scheduled run would, against the history the earlier runs kept. Precision
and recall count days (total monitor) and (day, category) pairs (category
monitor); false alarms are per 100 clean days or (day, category) pairs.

Overhead: `wh build` of the example at --overhead-scale on a year of
orders, with and without the monitors' tests (the same project, the tests
removed from _monitoring.yml), interleaved, medians of 3.
"""

import argparse
import datetime as dt
import json
import pathlib
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import duckdb

ROOT = pathlib.Path(__file__).resolve().parents[1]
START = dt.date(2023, 1, 2)
DAYS = 364
CATEGORIES = ["Electrónica", "Muebles", "Hogar", "Deportes", "Libros", "Juguetes", "Moda", "Alimentación", "Jardín",
              "Oficina"]


def copy_example(dest):
    for item in ["wh_project.yml", "sources.yml"]:
        shutil.copy(ROOT / item, dest / item)
    for item in ["models", "macros", "snapshots", "data/cdp"]:
        shutil.copytree(ROOT / item, dest / item)


def injections(eval_days):
    """Days (offsets from START) with a total drop, and (day, category)
    pairs with a category drop, spread over the evaluation window."""
    first = DAYS - eval_days
    total = [first + 2 + 9 * k for k in range(6) if 2 + 9 * k < eval_days]
    category = [(first + 6 + 9 * k, CATEGORIES[(3 * k) % len(CATEGORIES)]) for k in range(6) if 6 + 9 * k < eval_days]
    return total, category


def day(offset):
    return (START + dt.timedelta(days=offset)).isoformat()


def scored(warehouse, test_name, as_of):
    """The (dimension, anomalous) pairs the latest run scored."""
    files = sorted((warehouse / "_wh" / "metrics").glob("*.parquet"))
    sql = f"""select dimension, anomalous from read_parquet('{files[-1]}')
              where test_name = '{test_name}' and score is not null"""
    return duckdb.sql(sql).fetchall()


def evaluate(wh, datagen, seed, drop, eval_days, work):
    total, category = injections(eval_days)
    project = work / f"s{seed}-d{drop}"
    copy_example(project)
    raw = project / "raw"
    args = [datagen, "--scale", "1", "--seed", str(seed), "--out", raw, "--start", START.isoformat(), "--days",
            str(DAYS), "--weekly", "--trend-pct", "15"]
    args += [a for d in total for a in ("--drop", f"{day(d)}:{drop}")]
    args += [a for d, c in category for a in ("--drop", f"{day(d)}:{c}:{drop}")]
    subprocess.run(args, check=True, capture_output=True)
    vars_ = f"{{raw_root: '{raw}'}}"
    subprocess.run([wh, "build", "--quiet", "--select", "+daily_category_revenue", "--vars", vars_], cwd=project,
                   check=True, capture_output=True)
    found_total, found_category, scored_days, scored_pairs = set(), set(), 0, 0
    for d in range(DAYS - eval_days, DAYS):
        as_of = day(d + 1)
        v = f"{{raw_root: '{raw}', as_of_date: '{as_of}'}}"
        subprocess.run([wh, "test", "--quiet", "--select", "daily_category_revenue", "--vars", v], cwd=project,
                       capture_output=True)
        for dim, anomalous in scored(project / "warehouse", "daily_revenue_anomalies", as_of):
            scored_days += 1
            if anomalous:
                found_total.add(d)
        for dim, anomalous in scored(project / "warehouse", "category_revenue_anomalies", as_of):
            scored_pairs += 1
            if anomalous:
                found_category.add((d, dim.removeprefix("category=")))
    shutil.rmtree(project)
    # A category's drop lowers the total too: not a false alarm of the total.
    found_total -= {d for d, _ in category}
    return {
        "seed": seed, "drop_pct": drop,
        "total": counts(set(total), found_total, scored_days),
        "category": counts(set(category), found_category, scored_pairs),
    }


def counts(injected, found, scored_n):
    tp = len(injected & found)
    fp = len(found - injected)
    clean = scored_n - len(injected)
    return {"injected": len(injected), "found": len(found), "true_positives": tp, "false_alarms": fp,
            "clean": clean}


def summarize(results, key):
    by_drop = {}
    for r in results:
        by_drop.setdefault(r["drop_pct"], []).append(r[key])
    rows = []
    for drop, cs in sorted(by_drop.items()):
        tp = sum(c["true_positives"] for c in cs)
        found = sum(c["found"] for c in cs)
        inj = sum(c["injected"] for c in cs)
        fp = sum(c["false_alarms"] for c in cs)
        clean = sum(c["clean"] for c in cs)
        rows.append({"drop_pct": drop, "recall": tp / inj if inj else None, "precision": tp / found if found else None,
                     "false_alarms_per_100_clean": 100 * fp / clean if clean else None, "injected": inj,
                     "true_positives": tp, "false_alarms": fp, "clean": clean})
    return rows


def overhead(wh, datagen, scale, work):
    raw = work / "raw-overhead"
    subprocess.run([datagen, "--scale", str(scale), "--seed", "42", "--out", raw, "--start", START.isoformat(),
                    "--days", str(DAYS), "--weekly"], check=True, capture_output=True)
    with_m, without = work / "with", work / "without"
    copy_example(with_m)
    copy_example(without)
    yml = without / "models" / "monitoring" / "_monitoring.yml"
    text = yml.read_text()
    yml.write_text(re.sub(r"    data_tests:\n(      - metric_anomalies:\n(?:          .*\n)+)+", "", text, count=1))
    vars_ = f"{{raw_root: '{raw}'}}"
    times = {"with": [], "without": []}
    for _ in range(3):
        for name, project in (("with", with_m), ("without", without)):
            shutil.rmtree(project / "warehouse", ignore_errors=True)
            start = time.perf_counter()
            subprocess.run([wh, "build", "--quiet", "--vars", vars_], cwd=project, check=True, capture_output=True)
            times[name].append(time.perf_counter() - start)
    med = {k: statistics.median(v) for k, v in times.items()}
    return {"scale": scale, "days": DAYS, "with_s": med["with"], "without_s": med["without"],
            "ratio": med["with"] / med["without"], "all": times}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--wh", default=str(ROOT / "target" / "release" / "wh"))
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--drops", default="10,20,30,40,60")
    ap.add_argument("--eval-days", type=int, default=56)
    ap.add_argument("--overhead-scale", type=float, default=1.0)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "monitors.json"))
    a = ap.parse_args()
    wh = pathlib.Path(a.wh).resolve()
    datagen = wh.with_name("wh-datagen")
    work = pathlib.Path(tempfile.mkdtemp(prefix="wh-monitors-"))
    results = []
    for seed in range(1, a.seeds + 1):
        for drop in [int(x) for x in a.drops.split(",")]:
            r = evaluate(wh, datagen, seed, drop, a.eval_days, work)
            print(json.dumps(r), file=sys.stderr)
            results.append(r)
    report = {
        "binary": str(wh),
        "eval_days": a.eval_days,
        "total_revenue": summarize(results, "total"),
        "category_revenue": summarize(results, "category"),
        "overhead": overhead(wh, datagen, a.overhead_scale, work),
        "runs": results,
    }
    shutil.rmtree(work)
    out = pathlib.Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: report[k] for k in ("total_revenue", "category_revenue", "overhead")}, indent=2))


if __name__ == "__main__":
    main()
