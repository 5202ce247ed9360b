"""Opens every model wh publishes with real Parquet readers (DuckDB, pyarrow,
pandas), checks the files are what BI tools expect, and compares all models
with an independent DuckDB implementation of SPEC §2 on generated dirty data.
"""

import subprocess
import sys

import xml.etree.ElementTree as ET

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import ROOT, WH, copy_example
DATAGEN = WH.with_name("wh-datagen")

sys.path.insert(0, str(ROOT / "bench"))
from reference_sql import MODELS, REFERENCE  # noqa: E402


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    project = tmp_path_factory.mktemp("project")
    copy_example(project)
    raw = project / "raw"
    subprocess.run([DATAGEN, "--scale", "0.2", "--seed", "11", "--out", raw], check=True)
    subprocess.run(
        [WH, "build", "--quiet", "--junit", "junit.xml", "--vars", f"{{raw_root: '{raw}'}}"], cwd=project, check=True
    )
    return project / "warehouse", raw


# Published beside the SPEC models: the snapshots and the CRM feed.
EXTRA = {"snp_customers": "snapshots", "snp_customer_rfm": "snapshots", "rfm_segment_changes": "marts"}


def path_of(warehouse, model):
    return warehouse / {**MODELS, **EXTRA}[model] / f"{model}.parquet"


@pytest.mark.parametrize("model", sorted(MODELS) + sorted(EXTRA))
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


def test_snapshot_current_versions_are_the_dimension(built):
    """The first build's snapshot holds one current version per customer,
    as DuckDB reads both files."""
    warehouse, _ = built
    snap, dim = path_of(warehouse, "snp_customers"), warehouse / "star" / "dim_customers.parquet"
    missing = duckdb.sql(f"""
        select customer_id, customer_name, email from read_parquet('{dim}') where customer_id is not null
        except
        select customer_id, customer_name, email from read_parquet('{snap}') where dbt_valid_to is null
    """).fetchall()
    assert missing == []
    ((versions, current, keys),) = duckdb.sql(
        f"select count(*), count(*) filter (where dbt_valid_to is null), count(distinct customer_id) "
        f"from read_parquet('{snap}')"
    ).fetchall()
    assert versions == current == keys > 0
