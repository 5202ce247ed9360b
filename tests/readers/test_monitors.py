"""The sales monitors and the forecast of the example project, checked with
DuckDB: on generated orders with weekly seasonality and an injected drop,
the band wh records for each category's last day equals the mean and sample
standard deviation DuckDB computes over the same weekday of the eight weeks
before, from the published mart; the drop in total revenue is found; on
generated orders with a trend, the forecast of the next four weeks beats
the seasonal-naive forecast DuckDB computes from the same days, and the
next day is judged against the band forecast for it."""

import json
import subprocess

import duckdb
import pytest

from conftest import ROOT, WH, copy_example

ARTIFACTS = ROOT / "target" / "test-artifacts"

DATAGEN = WH.with_name("wh-datagen")
LAST = "2023-06-29"


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    project = tmp_path_factory.mktemp("monitors")
    copy_example(project)
    raw = project / "raw"
    subprocess.run(
        [DATAGEN, "--scale", "0.3", "--seed", "5", "--out", raw, "--start", "2023-01-01", "--days", "180",
         "--weekly", "--drop", f"{LAST}:60"],
        check=True,
    )
    out = subprocess.run(
        [WH, "build", "--select", "+daily_category_revenue", "--vars", f"{{raw_root: '{raw}'}}"],
        cwd=project, capture_output=True, text=True,
    )
    assert out.returncode == 0, out.stderr
    return project, out.stderr


def metric_rows(project, test_name):
    glob = project / "warehouse" / "_wh" / "metrics" / "*.parquet"
    sql = f"""select dimension, value, expected, lower, upper, anomalous from read_parquet('{glob}')
              where test_name = '{test_name}' and score is not null order by dimension"""
    return duckdb.sql(sql).fetchall()


def duckdb_bands(project, sensitivity):
    mart = project / "warehouse" / "monitoring" / "daily_category_revenue.parquet"
    sql = f"""
    with daily as (
        select 'category=' || coalesce(category, 'NULL') as dim, order_date as d, sum(revenue) as v
        from read_parquet('{mart}') group by all),
    bounds as (select dim, min(d) as first from daily group by all),
    last as (select max(d) as last from daily),
    grid as (
        select dim, unnest(generate_series(first::timestamp, last::timestamp, interval 1 day))::date as d
        from bounds, last),
    filled as (select g.dim, g.d, coalesce(daily.v, 0) as v from grid g left join daily using (dim, d)),
    training as (
        select dim, avg(v) as mean, stddev_samp(v) as sd from filled, last
        where d >= last - 56 and d < last and dayofweek(d) = dayofweek(last) group by all)
    select t.dim, f.v, t.mean, t.mean - {sensitivity} * t.sd, t.mean + {sensitivity} * t.sd
    from training t join filled f on f.dim = t.dim, last where f.d = last.last order by t.dim
    """
    return duckdb.sql(sql).fetchall()


def test_each_category_band_equals_duckdbs_weekday_statistics(built):
    project, _ = built
    wh_rows = metric_rows(project, "category_revenue_anomalies")
    reference = duckdb_bands(project, 3.5)
    assert len(reference) >= 9
    assert [r[0] for r in wh_rows] == [r[0] for r in reference]
    for got, want in zip(wh_rows, reference):
        for g, w in zip(got[1:5], want[1:5]):
            assert g == pytest.approx(w, rel=1e-9, abs=1e-9), (got, want)


def test_the_injected_drop_in_total_revenue_is_found_and_named(built):
    project, stderr = built
    ((dim, value, expected, lower, upper, anomalous),) = metric_rows(project, "daily_revenue_anomalies")
    assert dim == "" and anomalous, (value, expected, lower)
    assert value < lower < expected < upper
    assert value < 0.6 * expected
    assert f"sum(revenue) in the day of {LAST} was" in stderr, stderr
    results = json.loads((project / "target" / "run_results.json").read_text())
    status = {r["unique_id"]: r["status"] for r in results["results"]}
    assert status["test.shop.daily_revenue_anomalies"] == "warn"


def test_the_report_and_the_docs_site_chart_each_monitor_in_the_browser(built, browser):
    project, _ = built
    subprocess.run([WH, "report", "--out", "report.html", "--quiet"], cwd=project, check=True)
    subprocess.run([WH, "docs", "generate", "--quiet"], cwd=project, check=True)
    categories = len(duckdb_bands(project, 3.5))
    errors = []
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto((project / "report.html").as_uri())
    charts = page.locator("svg.monitor-chart")
    # The total, each category's band, and each category's days beside
    # the forecast (no forecast was built: their days only).
    assert charts.count() == 1 + 2 * min(categories, 12)
    total = page.locator("svg.monitor-chart", has=page.locator("title", has_text="sum(revenue)")).first
    # The injected drop is the last bucket, marked, and under the band.
    dots = total.locator("circle.anomaly")
    assert dots.count() >= 1
    assert LAST in dots.last.locator("title").text_content()
    assert total.locator("polygon.band").count() >= 1
    box = dots.last.bounding_box()
    assert box["x"] > total.bounding_box()["x"] + 0.9 * total.bounding_box()["width"] - 20
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "report-monitors.png"), full_page=True)

    site = project / "target" / "docs" / "index.html"
    page.goto(site.as_uri() + "#model/daily_category_revenue")
    page.wait_for_selector("img.monitor-chart")
    images = page.locator("img.monitor-chart")
    assert images.count() == 1 + 2 * min(categories, 12)
    widths = page.eval_on_selector_all("img.monitor-chart", "els => els.map(e => e.complete && e.naturalWidth)")
    assert all(w == 640 for w in widths), widths
    assert errors == []


START, AS_OF = "2023-01-01", "2024-01-08"  # 372 days of history, a Monday


@pytest.fixture(scope="module")
def forecast(tmp_path_factory):
    """The example built as of AS_OF (the forecast trains on the days
    before it), its forecast kept, then built as of the next day."""
    project = tmp_path_factory.mktemp("forecast")
    copy_example(project)
    raw = project / "raw"
    subprocess.run(
        [DATAGEN, "--scale", "0.3", "--seed", "7", "--out", raw, "--start", START, "--days", "400", "--weekly",
         "--trend-pct", "30"],
        check=True,
    )

    def build(as_of):
        out = subprocess.run(
            [WH, "build", "--select", "+daily_revenue_forecast", "--vars",
             f"{{raw_root: '{raw}', as_of_date: '{as_of}'}}"],
            cwd=project, capture_output=True, text=True,
        )
        assert out.returncode == 0, out.stderr
        return out.stderr

    build(AS_OF)
    table = project / "warehouse" / "monitoring" / "daily_revenue_forecast.parquet"
    first = project / "first_forecast.parquet"
    first.write_bytes(table.read_bytes())
    return project, first, build("2024-01-09")


def test_the_forecast_beats_seasonal_naive_on_the_next_four_weeks(forecast):
    project, first, _ = forecast
    mart = project / "warehouse" / "monitoring" / "daily_category_revenue.parquet"
    sql = f"""
    with actual as (
        select category, order_date as d, sum(revenue) as v from read_parquet('{mart}') group by all),
    fc as (select * from read_parquet('{first}')),
    naive as (
        -- the last complete week, repeated
        select fc.category, fc.order_date as d, a.v as v from fc join actual a
          on a.category = fc.category
         and a.d = fc.order_date - cast(7 * (1 + date_diff('day', date '{AS_OF}', fc.order_date) // 7) as integer))
    select count(*), avg(abs(fc.forecast - a.v) / a.v), avg(abs(n.v - a.v) / a.v),
           avg(case when a.v between fc.lower and fc.upper then 1 else 0 end),
           min(fc.trained_through), max(fc.step), count(distinct fc.category)
    from fc join actual a on a.category = fc.category and a.d = fc.order_date
            join naive n on n.category = fc.category and n.d = fc.order_date
    where a.v > 0
    """
    ((n, mape, naive_mape, coverage, trained_through, steps, categories),) = duckdb.sql(sql).fetchall()
    assert str(trained_through) == "2024-01-07" and steps == 28 and categories >= 9
    assert n >= 0.9 * 28 * categories
    print(f"MAPE wh {mape:.3f}, seasonal naive {naive_mape:.3f}, 95% band coverage {coverage:.2f}")
    assert mape < naive_mape, (mape, naive_mape)
    assert 0.75 <= coverage <= 1.0, coverage


def test_the_next_day_is_judged_by_the_band_forecast_for_it(forecast):
    project, first, _ = forecast
    glob = project / "warehouse" / "_wh" / "metrics" / "*.parquet"
    judged = duckdb.sql(f"""
        select m.dimension, m.expected, m.lower, m.upper, f.forecast, f.lower, f.upper
        from read_parquet('{glob}') m join read_parquet('{first}') f
          on m.dimension = 'category=' || f.category and f.order_date = date '{AS_OF}'
        where m.test_name = 'revenue_below_forecast' and m.score is not null order by 1""").fetchall()
    assert len(judged) >= 9
    for dim, expected, lower, upper, point, f_lower, f_upper in judged:
        assert (expected, lower, upper) == (point, f_lower, f_upper), dim


def test_the_report_draws_the_forecast_ahead_in_the_browser(forecast, browser):
    project, _, _ = forecast
    subprocess.run([WH, "report", "--out", "report.html", "--quiet"], cwd=project, check=True)
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto((project / "report.html").as_uri())
    ahead = page.locator("svg.monitor-chart", has=page.locator("polyline.forecast"))
    assert ahead.count() >= 9
    chart = ahead.first
    line, band = chart.locator("polyline.value").bounding_box(), chart.locator("polygon.forecast-band").bounding_box()
    # The forecast starts where the days end.
    assert band["x"] >= line["x"] + line["width"] - 15
    assert band["width"] > 50
    page.screenshot(path=str(ARTIFACTS / "report-forecast.png"), full_page=True)
    assert errors == []
