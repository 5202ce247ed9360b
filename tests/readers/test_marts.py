"""Opens every model wh publishes with real Parquet readers (DuckDB, pyarrow,
pandas), checks the files are what BI tools expect, and compares all models
with an independent DuckDB implementation of SPEC §2 on generated dirty data.
"""

import os
import pathlib
import shutil
import subprocess

import xml.etree.ElementTree as ET

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
WH = pathlib.Path(os.environ.get("WH_BIN", ROOT / "target" / "debug" / "wh"))
DATAGEN = WH.with_name("wh-datagen")

MODELS = {
    "stg_customers": "staging",
    "stg_products": "staging",
    "stg_orders": "staging",
    "stg_order_items": "staging",
    "dim_customers": "star",
    "dim_products": "star",
    "dim_date": "star",
    "fct_orders": "star",
    "fct_order_items": "star",
    "mart_customer_rfm": "marts",
    "customer_order_summary": "marts",
    "units_by_category": "analyses",
    "customer_running_spend": "analyses",
    "products_never_sold": "analyses",
    "pareto_top20": "analyses",
}

# An independent reading of SPEC §2, written for DuckDB.
REFERENCE = {
    "stg_customers": """
        select distinct cast(id as bigint) customer_id, trim(name) customer_name,
               lower(trim(email)) email, cast(created_at as date) created_at
        from raw_customers""",
    "stg_products": """
        select distinct cast(id as bigint) product_id, trim(name) product_name, trim(category) category
        from raw_products""",
    "stg_orders": """
        select distinct cast(id as bigint) order_id, cast(customer_id as bigint) customer_id,
               cast(order_date as date) order_date, cast(total_amount as double) total_amount
        from raw_orders where customer_id is not null""",
    "stg_order_items": """
        select distinct * from (
            select cast(id as bigint) order_item_id, cast(order_id as bigint) order_id,
                   cast(product_id as bigint) product_id, cast(quantity as bigint) quantity,
                   cast(unit_price as double) unit_price
            from raw_order_items) where quantity > 0""",
    "dim_customers": "select * from stg_customers",
    "dim_products": "select * from stg_products",
    "dim_date": """
        select cast(strftime(d, '%Y%m%d') as int) date_key, cast(d as date) date_day,
               year(d) as year, quarter(d) as quarter, month(d) as month, day(d) day_of_month,
               isodow(d) iso_day_of_week, isodow(d) >= 6 is_weekend
        from (select unnest(generate_series(min(order_date), max(order_date), interval 1 day)) d
              from stg_orders)""",
    "fct_orders": """
        select o.*, coalesce(l.n, 0) item_lines, coalesce(l.u, 0) units, coalesce(l.a, 0) items_amount
        from stg_orders o left join (
            select order_id, count(*) n, sum(quantity) u, sum(quantity * unit_price) a
            from stg_order_items group by order_id) l using (order_id)""",
    "fct_order_items": """
        select i.order_item_id, i.order_id, o.customer_id, o.order_date, i.product_id, i.quantity,
               i.unit_price, i.quantity * i.unit_price line_amount
        from stg_order_items i join stg_orders o using (order_id)""",
    "mart_customer_rfm": """
        with a as (select max(order_date) + 1 as as_of from fct_orders),
        p as (select customer_id, max(order_date) last_order_date, count(distinct order_id) frequency,
                     round(sum(total_amount), 2) monetary from fct_orders group by customer_id),
        s as (select p.*, c.customer_name, (a.as_of - p.last_order_date) recency_days
              from p cross join a left join dim_customers c using (customer_id)),
        r as (select *, ntile(4) over (order by recency_days desc, customer_id) r_score,
                        ntile(4) over (order by frequency, customer_id) f_score,
                        ntile(4) over (order by monetary, customer_id) m_score from s)
        select customer_id, customer_name, last_order_date, recency_days, frequency, monetary,
               r_score, f_score, m_score, concat(r_score, f_score, m_score) rfm_cell,
               case when r_score = 4 and f_score = 4 and m_score = 4 then '01 - Champions'
                    when r_score = 1 and f_score = 1 and m_score = 1 then '05 - Lost Customers'
                    when f_score >= 3 and m_score >= 3 and r_score >= 2 then '03 - Loyal Customers'
                    when r_score <= 2 then '04 - At Risk'
                    else '02 - Promising' end rfm_segment
        from r""",
    "customer_order_summary": """
        select c.customer_id, c.customer_name, count(o.order_id) total_orders,
               coalesce(sum(o.total_amount), 0) total_spent
        from dim_customers c left join fct_orders o using (customer_id)
        group by all""",
    "units_by_category": """
        select p.category, sum(i.quantity) units_sold
        from stg_order_items i join dim_products p using (product_id) group by all""",
    "customer_running_spend": """
        select o.customer_id, c.customer_name, o.order_id, o.order_date, o.total_amount,
               sum(o.total_amount) over (partition by o.customer_id order by o.order_date, o.order_id
                                         rows between unbounded preceding and current row) running_total
        from fct_orders o left join dim_customers c using (customer_id)""",
    "products_never_sold": """
        select * from dim_products
        where product_id not in (select product_id from stg_order_items)""",
    "pareto_top20": """
        with s as (select customer_id, sum(total_amount) spend from fct_orders group by all),
        r as (select *, row_number() over (order by spend desc, customer_id) rk from s),
        n as (select count(*) buyers, cast(ceil(0.2 * count(*)) as bigint) top from s)
        select n.buyers, n.top top_customers,
               (select sum(spend) from r where rk <= n.top) top_revenue,
               (select sum(spend) from s) total_revenue,
               (select sum(spend) from r where rk <= n.top) / (select sum(spend) from s) top_share
        from n""",
}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    project = tmp_path_factory.mktemp("project")
    for item in ["wh_project.yml", "sources.yml"]:
        shutil.copy(ROOT / item, project / item)
    for item in ["models", "macros"]:
        shutil.copytree(ROOT / item, project / item)
    raw = project / "raw"
    subprocess.run([DATAGEN, "--scale", "0.2", "--seed", "11", "--out", raw], check=True)
    subprocess.run(
        [WH, "build", "--quiet", "--junit", "junit.xml", "--vars", f"{{raw_root: '{raw}'}}"], cwd=project, check=True
    )
    return project / "warehouse", raw


def path_of(warehouse, model):
    return warehouse / MODELS[model] / f"{model}.parquet"


@pytest.mark.parametrize("model", sorted(MODELS))
def test_model_opens_in_every_reader(built, model):
    warehouse, _ = built
    path = path_of(warehouse, model)
    table = pq.read_table(path)
    frame = pd.read_parquet(path)
    ((count,),) = duckdb.sql(f"select count(*) from read_parquet('{path}')").fetchall()
    assert table.num_rows == len(frame) == count
    assert pq.ParquetFile(path).metadata.format_version == "1.0"
    for field in table.schema:
        t = field.type
        assert not pa.types.is_unsigned_integer(t), f"{model}.{field.name}: {t}"
        assert not pa.types.is_nested(t), f"{model}.{field.name}: {t}"
        assert not (pa.types.is_large_string(t) or pa.types.is_string_view(t)), f"{model}.{field.name}: {t}"
        if pa.types.is_timestamp(t):
            assert t.unit == "us", f"{model}.{field.name}: {t}"
        if pa.types.is_decimal(t):
            assert t.precision <= 18, f"{model}.{field.name}: {t}"


@pytest.mark.parametrize("model", sorted(MODELS))
def test_model_matches_independent_implementation(built, model):
    warehouse, raw = built
    con = duckdb.connect()
    for t in ["customers", "products", "orders", "order_items"]:
        con.execute(f"create view raw_{t} as select * from read_parquet('{raw / (t + '.parquet')}')")
    order = list(MODELS)
    for name in order[: order.index(model) + 1]:
        con.execute(f"create or replace view {name} as {REFERENCE[name]}")
    expected = con.execute(f"select * from {model}").df()
    actual = pd.read_parquet(path_of(warehouse, model))
    assert list(actual.columns[: len(expected.columns)]) == list(expected.columns)
    actual = actual[list(expected.columns)]
    assert len(actual) > 0 or model == "products_never_sold"
    keys = list(expected.columns)
    expected = normalise(expected).sort_values(keys).reset_index(drop=True)
    actual = normalise(actual).sort_values(keys).reset_index(drop=True)
    pd.testing.assert_frame_equal(actual, expected, check_dtype=False, check_exact=False, rtol=1e-9, atol=1e-6)


def normalise(frame):
    out = frame.copy()
    for c in out.columns:
        if pd.api.types.is_datetime64_any_dtype(out[c]) or out[c].dtype == object:
            out[c] = out[c].astype(str)
        elif pd.api.types.is_bool_dtype(out[c]):
            out[c] = out[c].astype(bool)
        elif pd.api.types.is_numeric_dtype(out[c]):
            out[c] = out[c].astype(float)
    return out


def test_junit_xml_has_the_shape_ci_systems_read(built):
    warehouse, _ = built
    root = ET.parse(warehouse.parent / "junit.xml").getroot()
    assert root.tag == "testsuites"
    suites = root.findall("testsuite")
    assert len(suites) == 1
    suite = suites[0]
    cases = suite.findall("testcase")
    assert int(suite.get("tests")) == int(root.get("tests")) == len(cases) > 15
    for attr in ["failures", "errors", "skipped"]:
        assert int(suite.get(attr)) >= 0
    failures = sum(1 for c in cases if c.find("failure") is not None)
    errors = sum(1 for c in cases if c.find("error") is not None)
    assert (failures, errors) == (int(suite.get("failures")), int(suite.get("errors")))
    for c in cases:
        assert c.get("name") and c.get("classname")
        float(c.get("time"))
    names = {c.get("name") for c in cases}
    assert "mart_customer_rfm" in names and "order_total_matches_lines" in names


def test_assertion_history_opens_in_duckdb(built):
    warehouse, _ = built
    pattern = warehouse / "_wh" / "test_results" / "*.parquet"
    rows = duckdb.sql(
        f"select status, count(*) from read_parquet('{pattern}', union_by_name = true) group by all"
    ).fetchall()
    statuses = dict(rows)
    assert set(statuses) <= {"pass", "warn", "fail", "error"}
    assert statuses.get("pass", 0) > 20
    assert "fail" not in statuses and "error" not in statuses
