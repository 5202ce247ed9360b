"""dbt itself is the reference: dbt-core with dbt-duckdb builds a fixture
project, wh builds a copy of it, and the two must agree on every unit
test's outcome, on which models are built or skipped, and on every table's
rows (dbt's DuckDB tables against wh's Parquet files)."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from conftest import ROOT, WH

FIXTURES = ROOT / "tests" / "fixtures" / "dbt"
DBT = Path(sys.executable).parent / "dbt"


def build_both(name, tmp_path):
    """Builds the fixture with dbt and with wh; returns both projects and runs."""
    dbt_dir, wh_dir = tmp_path / "dbt" / name, tmp_path / "wh" / name
    shutil.copytree(FIXTURES / name, dbt_dir)
    shutil.copytree(FIXTURES / name, wh_dir)
    env = {**os.environ, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false", "DO_NOT_TRACK": "1"}
    dbt = subprocess.run(
        [str(DBT), "build", "--profiles-dir", str(dbt_dir), "--project-dir", str(dbt_dir)],
        capture_output=True, text=True, env=env, cwd=dbt_dir,
    )
    ours = subprocess.run(
        [str(WH), "build", "--project-dir", str(wh_dir)],
        capture_output=True, text=True, env={**os.environ, "HOME": str(wh_dir)},
    )
    return (dbt_dir, dbt), (wh_dir, ours)


def statuses(project):
    import json

    results = json.loads((project / "target" / "run_results.json").read_text())["results"]
    return {r["unique_id"]: r for r in results}


def assert_same_rows(db, wh_dir, result):
    """wh's Parquet table of a run result has dbt's table's columns and rows;
    returns the rows."""
    name = result["unique_id"].split(".")[-1]
    cur = db.execute(f'select * from "{name}"')
    cols = [d[0] for d in cur.description]
    expected = sorted(cur.fetchall(), key=repr)
    table = pq.read_table(wh_dir / "shop" / result["adapter_response"]["output_path"])
    assert table.column_names == cols, name
    got = sorted((tuple(r[c] for c in cols) for r in table.to_pylist()), key=repr)
    assert got == expected, name
    return got


@pytest.fixture(scope="module")
def unit_tests_built(tmp_path_factory):
    """The unit_tests fixture built once by both, for the tests that read it."""
    return build_both("unit_tests", tmp_path_factory.mktemp("units"))


def test_unit_tests_agree_with_dbt(unit_tests_built):
    (dbt_dir, dbt), (wh_dir, ours) = unit_tests_built
    # One unit test fails on purpose: both exit 1.
    assert dbt.returncode == 1, dbt.stdout[-3000:]
    assert ours.returncode == 1, ours.stderr[-3000:]
    theirs, mine = statuses(dbt_dir), statuses(wh_dir)
    units = {k: v["status"] for k, v in theirs.items() if k.startswith("unit_test.")}
    assert len(units) == 7 and list(units.values()).count("fail") == 1, units
    assert {k: mine[k]["status"] for k in units} == units
    nodes = {k: v["status"] for k, v in theirs.items() if k.startswith(("model.", "seed."))}
    assert nodes["model.shop_units.status_counts"] == "skipped", nodes
    assert {k: mine[k]["status"] for k in nodes} == nodes
    # Both show the differing rows of the failing test: 2 placed orders, not 1.
    failed = mine["unit_test.shop_units.status_counts.counts_by_status_is_wrong_on_purpose"]
    assert "  - | placed | 1" in failed["message"] and "  + | placed | 2" in failed["message"], failed["message"]
    assert mine["unit_test.shop_units.status_counts.counts_by_status_is_wrong_on_purpose"]["failures"] == 2
    # Every table either builds has the same rows.
    db = duckdb.connect(str(dbt_dir / "shop.duckdb"), read_only=True)
    tables = [k for k, v in mine.items() if v["status"] == "success" and v["adapter_response"].get("output_path")]
    assert len(tables) == 4, tables
    for uid in tables:
        assert_same_rows(db, wh_dir, mine[uid])
    assert not (wh_dir / "shop" / "marts" / "status_counts.parquet").exists()


def test_unit_tests_in_the_manifest_parse_as_dbt_declares_them(unit_tests_built):
    import json

    from dbt_artifacts_parser.parser import parse_manifest

    (dbt_dir, _), (wh_dir, _) = unit_tests_built
    ours = parse_manifest(json.loads((wh_dir / "target" / "manifest.json").read_text()))
    theirs = json.loads((dbt_dir / "target" / "manifest.json").read_text())["unit_tests"]
    assert sorted(ours.unit_tests) == sorted(theirs)
    for uid, t in ours.unit_tests.items():
        assert t.model == theirs[uid]["model"]
        assert [g.input for g in t.given] == [g["input"] for g in theirs[uid]["given"]]
        assert t.depends_on.nodes == theirs[uid]["depends_on"]["nodes"]
        assert t.original_file_path == theirs[uid]["original_file_path"]


def test_hooks_agree_with_dbt(tmp_path):
    """on-run-start creates a table on the session, pre- and post-hooks write
    to it, and a model reads it: the same rows in dbt-duckdb and in wh."""
    (dbt_dir, dbt), (wh_dir, ours) = build_both("hooks", tmp_path)
    assert dbt.returncode == 0, dbt.stdout[-3000:]
    assert ours.returncode == 0, ours.stderr[-3000:]
    mine = statuses(wh_dir)
    db = duckdb.connect(str(dbt_dir / "shop.duckdb"), read_only=True)
    for uid in ["seed.shop_hooks.raw_orders", "model.shop_hooks.customer_totals"]:
        assert_same_rows(db, wh_dir, mine[uid])
    audit = assert_same_rows(db, wh_dir, mine["model.shop_hooks.hook_audit"])
    # Both ran every hook before the audit, the folder's post-hooks on the
    # built table (3 customers, 174 in all).
    assert audit == sorted([
        ("run", "start", 0), ("stg_orders", "pre", 0), ("customer_totals", "pre", 1),
        ("customer_totals", "post", 3), ("customer_totals", "post-total", 174),
    ], key=repr)
    # dbt ran on-run-end after the models.
    assert ("run", "end", 0) in db.execute("select * from hook_log").fetchall()
    # The manifest keeps the hooks as written, as dbt's does.
    import json

    node = json.loads((wh_dir / "target" / "manifest.json").read_text())["nodes"]["model.shop_hooks.customer_totals"]
    theirs = json.loads((dbt_dir / "target" / "manifest.json").read_text())["nodes"]["model.shop_hooks.customer_totals"]
    strip = lambda hooks: [(h["sql"], h["transaction"]) for h in hooks]
    assert strip(node["config"]["post-hook"]) == strip(theirs["config"]["post-hook"])
    assert strip(node["config"]["pre-hook"]) == strip(theirs["config"]["pre-hook"])
