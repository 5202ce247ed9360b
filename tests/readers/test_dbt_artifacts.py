"""wh's artifacts read by dbt-artifacts-parser (PyPI), the library the dbt
ecosystem's tools read them with: its pydantic models of dbt's published
schemas (manifest v12, run-results v6, catalog v1, sources v3) reject a
missing required key and any key the schemas do not name. Each artifact of
a build of the example (with a failing model, the model it skips and a
warning) and of the dbt fixtures is parsed, and what the parsed objects say
is checked against the project's files and the Parquet files (pyarrow)."""

import json
import re
import shutil
import subprocess

import pyarrow.parquet as pq
import pytest
from dbt_artifacts_parser.parser import parse_catalog, parse_manifest, parse_run_results, parse_sources

from conftest import GOLDEN_RAW, ROOT, WH, copy_example

FIXTURES = ROOT / "tests" / "fixtures" / "dbt"


def load(project, name):
    return json.loads((project / "target" / f"{name}.json").read_text())


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    project = tmp_path_factory.mktemp("artifacts")
    copy_example(project)
    (project / "models" / "broken.sql").write_text("select no_such_column from {{ ref('fct_orders') }}\n")
    (project / "models" / "after_broken.sql").write_text("select * from {{ ref('broken') }}\n")
    out = subprocess.run([WH, "build", "--vars", f"{{raw_root: '{GOLDEN_RAW}'}}"], cwd=project,
                         capture_output=True, text=True)
    assert out.returncode == 1, out.stderr
    return project


def refs_in(sql_file):
    return sorted({f"model.shop.{m}" for m in re.findall(r"ref\('([a-z_0-9]+)'\)", sql_file.read_text())})


def test_the_manifest_parses_as_dbts_v12_and_says_what_the_project_says(example):
    manifest = parse_manifest(load(example, "manifest"))
    assert type(manifest).__name__ == "ManifestV12"
    models = {k: n for k, n in manifest.nodes.items() if n.resource_type == "model"}
    sql_files = {p.stem: p for p in (example / "models").rglob("*.sql")}
    assert {n.name for n in models.values()} == set(sql_files)
    for uid, node in models.items():
        sql = sql_files[node.name]
        assert node.original_file_path == str(sql.relative_to(example)), uid
        assert node.path == str(sql.relative_to(example / "models")), uid
        assert [d for d in node.depends_on.nodes if d.startswith("model.")] == refs_in(sql), uid
        assert node.fqn == ["shop", *sql.relative_to(example / "models").parent.parts, node.name], uid
        assert node.schema_ == "main" and node.alias == node.name, uid
    fct = manifest.nodes["model.shop.fct_orders"]
    assert fct.depends_on.nodes == ["model.shop.stg_order_items", "model.shop.stg_orders"]
    assert fct.config.materialized == "incremental"  # its config() call
    # wh's own facts are under config.wh (dbt's config map is open).
    assert fct.config.model_extra["wh"]["output_path"] == "star/fct_orders.parquet"
    lineage = manifest.nodes["model.shop.customer_order_summary"].config.model_extra["wh"]["column_lineage"]
    assert lineage["columns"]["total_spent"]["inputs"] == [
        {"relation": "fct_orders", "column": "total_amount", "kinds": ["AGGREGATION"]}]
    # Each YAML test is a test node attached to its model, with its kwargs.
    tests = {k: n for k, n in manifest.nodes.items() if n.resource_type == "test"}
    unique = tests["test.shop.unique_dim_customers_customer_id"]
    assert (unique.attached_node, unique.column_name, unique.test_metadata.name) == \
        ("model.shop.dim_customers", "customer_id", "unique")
    assert "test.shop.unique_dim_customers_customer_id" in manifest.child_map["model.shop.dim_customers"]
    # The project's macros, and the ones each model's rendering called.
    assert sorted(manifest.macros) == [f"macro.shop.{m}" for m in [
        "cdp_components", "cdp_email", "cdp_phone", "changed_rows", "clean_email", "clean_text"]]
    clean = manifest.macros["macro.shop.clean_text"]
    assert clean.original_file_path == "macros/cleaning.sql"
    assert clean.macro_sql == "{% macro clean_text(column) -%}\ntrim({{ column }})\n{%- endmacro %}"
    assert manifest.nodes["model.shop.stg_customers"].depends_on.macros == [
        "macro.shop.clean_email", "macro.shop.clean_text"]
    assert manifest.nodes["model.shop.stg_cdp_crm_customers"].depends_on.macros == [
        "macro.shop.cdp_email", "macro.shop.cdp_phone"]
    assert manifest.nodes["model.shop.dim_date"].depends_on.macros == []
    # Sources name where they are read from as dbt-external-tables does.
    orders = manifest.sources["source.shop.shop.orders"]
    assert orders.external.location == str(GOLDEN_RAW / "orders.parquet") and orders.external.file_format == "parquet"
    assert (orders.schema_, orders.identifier, orders.fqn) == ("shop", "orders", ["shop", "shop", "orders"])
    assert manifest.exposures["exposure.shop.customer_value"].depends_on.nodes == [
        "model.shop.customer_order_summary", "model.shop.mart_customer_rfm"]


def test_run_results_parse_as_dbts_v6_with_every_status(example):
    results = parse_run_results(load(example, "run_results"))
    status = {r.unique_id: r.status.value for r in results.results}
    assert status["model.shop.broken"] == "error"
    assert status["model.shop.after_broken"] == "skipped"
    assert status["model.shop.fct_orders"] == "success"
    assert status["test.shop.order_total_matches_lines"] == "warn"
    assert status["test.shop.unique_dim_customers_customer_id"] == "pass"
    by_id = {r.unique_id: r for r in results.results}
    broken = by_id["model.shop.broken"]
    assert "no_such_column" in broken.message
    # Where DataFusion stopped: the compiled SQL's line and column.
    assert broken.adapter_response["location"] == "target/compiled/models/broken.sql:1:8"
    fct = by_id["model.shop.fct_orders"]
    rows = pq.read_metadata(example / "warehouse" / "star" / "fct_orders.parquet").num_rows
    assert fct.adapter_response["rows_affected"] == rows
    assert [t.name for t in fct.timing] == ["execute"] and fct.timing[0].started_at <= fct.timing[0].completed_at
    warn = by_id["test.shop.order_total_matches_lines"]
    assert warn.failures == 1 and warn.adapter_response["attached_node"] == "model.shop.fct_orders"


def test_the_catalog_parses_as_dbts_v1_and_matches_the_parquet_footers(example):
    catalog = parse_catalog(load(example, "catalog"))
    assert len(catalog.nodes) >= 34
    for uid, table in catalog.nodes.items():
        assert table.unique_id == uid
        path = example / "warehouse" / table.stats["path"].value
        meta = pq.read_metadata(path)
        assert table.stats["row_count"].value == meta.num_rows, uid
        assert list(table.columns) == meta.schema.to_arrow_schema().names, uid
        assert table.metadata.schema_ == "main" and table.metadata.name == uid.split(".")[-1]


def test_sources_json_parses_as_dbts_v3_with_a_freshness_result(tmp_path):
    project = tmp_path / "ecommerce"
    shutil.copytree(FIXTURES / "ecommerce", project)
    yml = project / "models" / "sources.yml"
    yml.write_text(yml.read_text().replace(
        "        loaded_at_field: ordered_at\n",
        "        loaded_at_field: ordered_at\n        freshness: {warn_after: {count: 1, period: day}}\n"))
    out = subprocess.run([WH, "source", "freshness", "--project-dir", project], capture_output=True, text=True,
                         env={"HOME": str(project), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    sources = parse_sources(load(project, "sources"))
    [orders] = sources.results
    assert orders.unique_id == "source.ecommerce.shop.orders"
    # The fixture's orders are years old: past a day, a warning.
    assert orders.status.value == "warn" and orders.max_loaded_at_time_ago_in_s > 365 * 86400
    assert orders.criteria.warn_after.count == 1 and orders.criteria.warn_after.period.value == "day"


@pytest.mark.parametrize("fixture", ["jaffle_shop", "ecommerce"])
def test_a_dbt_projects_artifacts_parse(fixture, tmp_path):
    project = tmp_path / fixture
    shutil.copytree(FIXTURES / fixture, project)
    out = subprocess.run([WH, "build", "--project-dir", project], capture_output=True, text=True,
                         env={"HOME": str(project), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    manifest = parse_manifest(load(project, "manifest"))
    results = parse_run_results(load(project, "run_results"))
    catalog = parse_catalog(load(project, "catalog"))
    seeds = [n for n in manifest.nodes.values() if n.resource_type == "seed"]
    assert sorted(n.name for n in seeds) == {"jaffle_shop": ["raw_customers", "raw_orders", "raw_payments"],
                                             "ecommerce": ["countries"]}[fixture]
    built = {r.unique_id for r in results.results if r.status.value == "success"}
    assert built == {k for k, n in manifest.nodes.items() if n.resource_type in ("model", "seed", "snapshot")}
    assert set(catalog.nodes) <= built
