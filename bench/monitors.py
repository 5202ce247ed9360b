"""How well the example project's sales monitors find injected anomalies,
how well its forecast forecasts, and what monitoring costs a build.

usage: python bench/monitors.py [--wh PATH] [--seeds 2] [--drops 20,40,60] [--eval-days 56]
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
monitor); false alarms are per 100 clean days or (day, category) pairs. The
days of a whole-order drop lower every category: they count for the total
monitor only, and a category's drop day is not a false alarm of the total.

Forecast: through the same window the forecast model is rebuilt each day
(`wh build --select daily_revenue_forecast` with `as_of_date` the next
day), so the forecast history holds a forecast from every origin; the
`revenue_below_forecast` monitor (forecast not met) is scored with the
category monitor's injected drops. The forecasts' error on the days that
followed (MAPE over (day, category) pairs with revenue, at 1, 7 and 28 days
ahead) is set against the seasonal-naive forecast from the same origin (the
last complete week repeated), computed in DuckDB from the published mart.

Overhead: `wh build` of the example at --overhead-scale on a year of
orders in three variants (as it is; without the forecast model; without
the forecast model and the monitors' tests), interleaved, medians of 3:
what the monitors add, and what the forecast adds.
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
    dest.mkdir(parents=True, exist_ok=True)
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
    forecast_vars = f"{{raw_root: '{raw}', as_of_date: '{day(DAYS - eval_days)}'}}"
    subprocess.run([wh, "build", "--quiet", "--select", "daily_revenue_forecast", "--vars", forecast_vars],
                   cwd=project, check=True, capture_output=True)
    found_total, found_category, scored_days, scored_pairs = set(), set(), 0, 0
    found_forecast, forecast_pairs = set(), 0
    for d in range(DAYS - eval_days, DAYS):
        as_of = day(d + 1)
        v = f"{{raw_root: '{raw}', as_of_date: '{as_of}'}}"
        subprocess.run([wh, "test", "--quiet", "--select", "daily_category_revenue", "--vars", v], cwd=project,
                       capture_output=True)
        subprocess.run([wh, "build", "--quiet", "--select", "daily_revenue_forecast", "--vars", v], cwd=project,
                       check=True, capture_output=True)
        for dim, anomalous in scored(project / "warehouse", "daily_revenue_anomalies", as_of):
            scored_days += 1
            if anomalous:
                found_total.add(d)
        if d in total:
            # A drop of all orders lowers every category: those days are
            # the total monitor's, not the per-category monitors'.
            continue
        for dim, anomalous in scored(project / "warehouse", "category_revenue_anomalies", as_of):
            scored_pairs += 1
            if anomalous:
                found_category.add((d, dim.removeprefix("category=")))
        for dim, anomalous in scored(project / "warehouse", "revenue_below_forecast", as_of):
            forecast_pairs += 1
            if anomalous:
                found_forecast.add((d, dim.removeprefix("category=")))
    accuracy = forecast_accuracy(project / "warehouse", set(total) | {d for d, _ in category})
    shutil.rmtree(project)
    # A category's drop lowers the total too: not a false alarm of the total.
    found_total -= {d for d, _ in category}
    return {
        "seed": seed, "drop_pct": drop,
        "total": counts(set(total), found_total, scored_days),
        "category": counts(set(category), found_category, scored_pairs),
        "forecast_not_met": counts(set(category), found_forecast, forecast_pairs),
        "forecast_accuracy": accuracy,
    }


def forecast_accuracy(warehouse, injected_days):
    """MAPE of the forecast history's forecasts at 1, 7 and 28 days ahead
    and of the seasonal-naive forecast from the same origins, over (day,
    category) pairs with revenue, leaving out the days with an injected
    drop."""
    mart = warehouse / "monitoring" / "daily_category_revenue.parquet"
    history = warehouse / "_wh" / "forecasts" / "*.parquet"
    skip = ", ".join(f"date '{day(d)}'" for d in sorted(injected_days)) or "date '1900-01-01'"
    sql = f"""
    with actual as (
        select 'category=' || category as dim, order_date as d, sum(revenue) as v
        from read_parquet('{mart}') group by all),
    fc as (
        select distinct dimension as dim, cast(bucket_start as date) as d, cast(trained_through as date) as origin,
               step, forecast from read_parquet('{history}') where step in (1, 7, 28))
    select fc.step, count(*), avg(abs(fc.forecast - a.v) / a.v), avg(abs(n.v - a.v) / a.v)
    from fc join actual a on a.dim = fc.dim and a.d = fc.d
            join actual n on n.dim = fc.dim and n.d = fc.d - cast(7 * (1 + (date_diff('day', fc.origin, fc.d) - 1) // 7) as integer)
    where a.v > 0 and fc.d not in ({skip}) and n.d not in ({skip})
    group by fc.step order by fc.step
    """
    return [{"steps_ahead": s, "pairs": n, "mape": m, "seasonal_naive_mape": b, "ratio": m / b}
            for s, n, m, b in duckdb.sql(sql).fetchall()]


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


def accuracy_summary(results):
    """Per steps ahead: the pair-weighted MAPE of wh's forecasts and of
    seasonal naive over every run."""
    by_step = {}
    for r in results:
        for a in r["forecast_accuracy"]:
            by_step.setdefault(a["steps_ahead"], []).append(a)
    rows = []
    for step, xs in sorted(by_step.items()):
        n = sum(x["pairs"] for x in xs)
        mape = sum(x["mape"] * x["pairs"] for x in xs) / n
        naive = sum(x["seasonal_naive_mape"] * x["pairs"] for x in xs) / n
        rows.append({"steps_ahead": step, "pairs": n, "mape": mape, "seasonal_naive_mape": naive, "ratio": mape / naive})
    return rows


def overhead(wh, datagen, scale, work):
    """Builds of the example on a year of orders in three variants: as it
    is, without the forecast model, and without the forecast model and the
    monitors; interleaved, medians of 3."""
    raw = work / "raw-overhead"
    subprocess.run([datagen, "--scale", str(scale), "--seed", "42", "--out", raw, "--start", START.isoformat(),
                    "--days", str(DAYS), "--weekly"], check=True, capture_output=True)
    variants = {"all": work / "all", "monitors": work / "monitors", "neither": work / "neither"}
    for name, project in variants.items():
        copy_example(project)
        folder = project / "models" / "monitoring"
        text = (folder / "_monitoring.yml").read_text()
        if name != "all":
            (folder / "daily_revenue_forecast.sql").unlink()
            text = text[:text.index("  - name: daily_revenue_forecast")]
        if name == "neither":
            text = re.sub(r"    data_tests:\n(      - metric_anomalies:\n(?:          .*\n)+)+", "", text, count=1)
        (folder / "_monitoring.yml").write_text(text)
    vars_ = f"{{raw_root: '{raw}'}}"
    times = {name: [] for name in variants}
    for _ in range(3):
        for name, project in variants.items():
            shutil.rmtree(project / "warehouse", ignore_errors=True)
            start = time.perf_counter()
            subprocess.run([wh, "build", "--quiet", "--vars", vars_], cwd=project, check=True, capture_output=True)
            times[name].append(time.perf_counter() - start)
    med = {k: statistics.median(v) for k, v in times.items()}
    return {"scale": scale, "days": DAYS, "median_s": med,
            "monitors_ratio": med["monitors"] / med["neither"], "forecast_ratio": med["all"] / med["monitors"],
            "monitoring_and_forecast_ratio": med["all"] / med["neither"], "all": times}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--wh", default=str(ROOT / "target" / "release" / "wh"))
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--drops", default="20,40,60")
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
        "forecast_not_met": summarize(results, "forecast_not_met"),
        "forecast_accuracy": accuracy_summary(results),
        "overhead": overhead(wh, datagen, a.overhead_scale, work),
        "runs": results,
    }
    shutil.rmtree(work)
    out = pathlib.Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    keys = ("total_revenue", "category_revenue", "forecast_not_met", "forecast_accuracy", "overhead")
    print(json.dumps({k: report[k] for k in keys}, indent=2))


if __name__ == "__main__":
    main()
