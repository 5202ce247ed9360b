"""dbt projects written for DuckDB build with `wh build` unchanged, and every
table equals what DuckDB itself computes from the same seeds and SQL.

The expected values are not written by hand: DuckDB (the Python package)
loads each seed CSV with its own reader, then runs each model's compiled SQL
from wh's manifest in dependency order, and the test compares DuckDB's
tables with wh's Parquet files row by row."""

import datetime
import decimal
import json
import math
import os
import shutil
import subprocess

import duckdb
import pytest

from conftest import ROOT, WH

FIXTURES = ROOT / "tests" / "fixtures" / "dbt"


def wh(project, *args, env=None):
    return subprocess.run(
        [str(WH), *args, "--project-dir", str(project)],
        capture_output=True,
        text=True,
        env={**os.environ, "HOME": str(project), **(env or {})},
    )


def copy_fixture(name, tmp_path):
    project = tmp_path / name
    shutil.copytree(FIXTURES / name, project)
    return project


def dependency_order(nodes):
    """Node ids, parents first."""
    done, order = set(), []

    def visit(uid):
        if uid in done or uid not in nodes:
            return
        done.add(uid)
        for parent in nodes[uid]["depends_on"].get("nodes", []):  # none on a seed, as in dbt
            visit(parent)
        order.append(uid)

    for uid in sorted(nodes):
        visit(uid)
    return order


def duckdb_reference(project, manifest):
    """Runs the project's seeds and compiled SQL in DuckDB."""
    con = duckdb.connect()
    con.execute("create schema wh_seeds")
    for source in manifest["sources"].values():
        if source["source_name"] == "wh_seeds":
            continue
        con.execute(f'create schema if not exists "{source["source_name"]}"')
        reader = "read_csv" if source["external"]["file_format"] == "csv" else "read_parquet"
        location = source["external"]["location"].replace("'", "''")
        con.execute(f'create table "{source["source_name"]}"."{source["name"]}" as select * from {reader}(\'{location}\')')
    nodes = {k: n for k, n in manifest["nodes"].items() if n["resource_type"] in ("model", "seed")}
    for uid in dependency_order(nodes):
        node = nodes[uid]
        name = node["name"]
        if node["resource_type"] == "seed":
            types = node["config"].get("column_types") or {}
            path = project / node["original_file_path"]
            con.execute(
                f"create table wh_seeds.\"{name}\" as select * from read_csv(?, header = true, types = {types!r})"
                if types
                else f"create table wh_seeds.\"{name}\" as select * from read_csv(?, header = true)",
                [str(path)],
            )
        kind = "view" if node["config"]["materialized"] in ("view", "ephemeral") else "table"
        # A seed has no SQL in dbt's manifest: its table is the CSV loaded above.
        sql = node["compiled_code"] if node["resource_type"] != "seed" else f'select * from wh_seeds."{name}"'
        con.execute(f'create {kind} "{name}" as {sql}')
    return con


def normal(value):
    """A value as both sides can be compared: numbers as floats."""
    if isinstance(value, (decimal.Decimal, int)) and not isinstance(value, bool):
        return float(value)
    return value


def same(a, b):
    a, b = normal(a), normal(b)
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
    if isinstance(a, datetime.datetime) and isinstance(b, datetime.datetime):
        return a.replace(tzinfo=None) == b.replace(tzinfo=None)
    return a == b


def kind(value):
    """The broad type of a value: an integer where DuckDB has an integer."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, (float, decimal.Decimal)):
        return "number"
    return type(value).__name__


def compare_tables(project, manifest, warehouse):
    con = duckdb_reference(project, manifest)
    compared = []
    for node in manifest["nodes"].values():
        if node["resource_type"] not in ("model", "seed") or not node["config"]["wh"].get("output_path"):
            continue
        name = node["name"]
        path = warehouse / node["config"]["wh"]["output_path"]
        assert path.is_file(), f"{name}: no table at {path}"
        ours = con.execute(f"select * from read_parquet('{path}')")
        our_columns = [d[0] for d in ours.description]
        our_rows = ours.fetchall()
        ref = con.execute(f'select * from "{name}"')
        ref_columns = [d[0] for d in ref.description]
        ref_rows = ref.fetchall()
        assert our_columns == ref_columns, f"{name}: columns {our_columns} != DuckDB's {ref_columns}"
        key = lambda row: tuple((v is None, str(normal(v))) for v in row)  # noqa: E731
        our_rows.sort(key=key)
        ref_rows.sort(key=key)
        assert len(our_rows) == len(ref_rows), f"{name}: {len(our_rows)} rows, DuckDB {len(ref_rows)}"
        assert len(our_rows) > 0, f"{name}: no rows"
        for ours_row, ref_row in zip(our_rows, ref_rows):
            for column, a, b in zip(our_columns, ours_row, ref_row):
                assert same(a, b), f"{name}.{column}: wh {a!r} != DuckDB {b!r}\n  wh:     {ours_row}\n  DuckDB: {ref_row}"
                assert None in (kind(a), kind(b)) or kind(a) == kind(b), (
                    f"{name}.{column}: wh gives {type(a).__name__} {a!r}, DuckDB {type(b).__name__} {b!r}"
                )
        compared.append(name)
    return compared


def test_jaffle_shop_builds_unchanged_and_equals_duckdb(tmp_path):
    project = copy_fixture("jaffle_shop", tmp_path)
    out = wh(project, "build")
    assert out.returncode == 0, out.stderr
    # The profile's DuckDB path (jaffle_shop.duckdb) is the warehouse folder.
    warehouse = project / "jaffle_shop"
    assert (warehouse / "seeds" / "raw_orders.parquet").is_file()
    manifest = json.loads((project / "target" / "manifest.json").read_text())
    compared = compare_tables(project, manifest, warehouse)
    assert sorted(compared) == [
        "customers",
        "order_status_summary",
        "orders",
        "raw_customers",
        "raw_orders",
        "raw_payments",
    ]

    # Every test ran and passed: generic (built-in and the project's own
    # from tests/generic), singular, on seeds and on models.
    results = json.loads((project / "target" / "run_results.json").read_text())
    tests = [r for r in results["results"] if r["unique_id"].startswith("test.")]
    assert len(tests) == 22, [r["unique_id"] for r in tests]
    assert all(r["status"] == "pass" for r in tests), [(r["unique_id"], r["status"]) for r in tests]
    ids = {r["unique_id"] for r in tests}
    assert "test.jaffle_shop.assert_total_payment_amount_is_positive" in ids
    assert any("is_positive" in i for i in ids)
    assert any("raw_customers" in i for i in ids)

    # Analyses are compiled, not run.
    analysis = (project / "target" / "compiled" / "analyses" / "orders_by_month.sql").read_text()
    assert 'from "orders"' in analysis, analysis
    assert not list(warehouse.rglob("orders_by_month*"))

    # Doc blocks reach the manifest.
    orders = manifest["nodes"]["model.jaffle_shop.orders"]
    assert orders["columns"]["status"]["description"].startswith("Orders can be one of the following statuses")
    # Folder configs written without `+` apply, as in dbt.
    assert manifest["nodes"]["model.jaffle_shop.stg_orders"]["config"]["materialized"] == "view"
    assert manifest["nodes"]["model.jaffle_shop.customers"]["config"]["materialized"] == "table"
    assert "marts" in manifest["nodes"]["model.jaffle_shop.orders"]["config"]["tags"]

    # The pivot over the var's list made one column per payment method.
    con = duckdb.connect()
    columns = [d[0] for d in con.execute(f"select * from read_parquet('{warehouse}/marts/orders.parquet')").description]
    assert columns[4:8] == ["credit_card_amount", "coupon_amount", "bank_transfer_amount", "gift_card_amount"]


def test_duckdb_sql_semantics_equal_duckdb(tmp_path):
    project = copy_fixture("duckdb_sql", tmp_path)
    out = wh(project, "build")
    assert out.returncode == 0, out.stderr
    manifest = json.loads((project / "target" / "manifest.json").read_text())
    compared = compare_tables(project, manifest, project / "warehouse")
    assert sorted(compared) == ["aggregates", "arithmetic", "date_functions", "dates", "duckdb_aggregates", "events", "strings", "windows"]


def test_ecommerce_with_sources_and_cross_database_macros_equals_duckdb(tmp_path):
    project = copy_fixture("ecommerce", tmp_path)
    out = wh(project, "build")
    assert out.returncode == 0, out.stderr
    # external_root of the profile is the warehouse; threads come from it.
    assert "with 2 thread(s), target `local` -> out" in out.stderr, out.stderr
    manifest = json.loads((project / "target" / "manifest.json").read_text())
    compared = compare_tables(project, manifest, project / "out")
    assert sorted(compared) == ["countries", "dim_customers", "fct_orders"]
    results = json.loads((project / "target" / "run_results.json").read_text())
    tests = [r for r in results["results"] if r["unique_id"].startswith("test.")]
    assert len(tests) == 13 and all(r["status"] == "pass" for r in tests), tests
    # The doc block reached the source's description.
    customers = manifest["sources"]["source.ecommerce.shop.customers"]
    assert customers["description"].startswith("One row per customer account")
    # A second build is incremental: nothing new, the same rows.
    before = duckdb.connect().execute(f"select count(*) from read_parquet('{project}/out/marts/fct_orders.parquet')").fetchone()
    again = wh(project, "build")
    assert again.returncode == 0, again.stderr
    after = duckdb.connect().execute(f"select count(*) from read_parquet('{project}/out/marts/fct_orders.parquet')").fetchone()
    assert before == after == (80,)


def test_compat_report_lists_what_is_mapped_ignored_and_unsupported(tmp_path):
    project = copy_fixture("jaffle_shop", tmp_path)
    out = wh(project, "debug", "--compat")
    assert out.returncode == 0, out.stderr
    report = out.stdout
    assert "9 models" in report or "6 models" in report, report
    assert "DuckDB path `jaffle_shop.duckdb` -> Parquet warehouse folder `jaffle_shop/`" in report, report
    # customers.sql's post_hook (`analyze {{ this }}`) runs: it is not listed.
    assert "post_hook" not in report, report
    assert "persist_docs" in report, report
    assert "1 analyses, compiled to target/compiled/ and not run" in report, report
    as_json = json.loads(wh(project, "debug", "--compat", "--format", "json").stdout)
    kinds = {n["what"]: n["kind"] for n in as_json["notes"]}
    assert "config(post_hook=...)" not in kinds, kinds
    assert kinds["models.+persist_docs"] == "ignored"


def test_other_adapters_are_refused_up_front(tmp_path):
    project = copy_fixture("jaffle_shop", tmp_path)
    out = wh(project, "build", "--target", "prod")
    assert out.returncode == 2
    assert "uses the `postgres` adapter, which wh does not support" in out.stderr, out.stderr
    assert "profiles.yml" in out.stderr
    assert not (project / "jaffle_shop").exists()


@pytest.mark.parametrize("fixture", ["jaffle_shop"])
def test_env_var_in_profile_moves_the_warehouse(tmp_path, fixture):
    project = copy_fixture(fixture, tmp_path)
    out = wh(project, "seed", env={"JAFFLE_DB": "elsewhere.duckdb"})
    assert out.returncode == 0, out.stderr
    assert (project / "elsewhere" / "seeds" / "raw_customers.parquet").is_file()
    assert not (project / "elsewhere" / "marts").exists()
