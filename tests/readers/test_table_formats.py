"""Table formats beyond one Parquet file. `format: delta`: each build one
Delta commit, old versions kept for time travel, readable by an independent
Delta reader (the `deltalake` Python package) and by downstream models.
`partition_by` on Parquet: Hive-style folders of a version, switched by a
pointer, read by pyarrow and DuckDB. On local disk and on S3."""

import io
import json
import subprocess

import duckdb
import pyarrow.parquet as pq
from deltalake import DeltaTable

from conftest import GOLDEN_RAW, WH, copy_example

DELTA_MODEL = """{{ config(format='delta', partition_by=['order_year']) }}
select order_id, customer_id, total_amount, cast(date_part('year', order_date) as bigint) as order_year
from {{ ref('fct_orders') }}
"""
READER_MODEL = """select order_year, count(*) as orders, sum(total_amount) as revenue
from {{ ref('orders_delta') }} group by 1 order by 1
"""


def delta_project(path):
    project = copy_example(path)
    (project / "models" / "marts" / "orders_delta.sql").write_text(DELTA_MODEL)
    (project / "models" / "marts" / "delta_reader.sql").write_text(READER_MODEL)
    return project


def build(project, raw, *extra, env=None):
    return subprocess.run([str(WH), "build", "--quiet", "--vars", f"{{raw_root: '{raw}'}}", *extra],
                          cwd=project, env=env, check=True, capture_output=True, text=True)


def expected_rows(project, read=None):
    fct = pq.read_table(project / "warehouse" / "star" / "fct_orders.parquet") if read is None else read
    return sorted(zip(fct["order_id"].to_pylist(), fct["total_amount"].to_pylist()))


def test_delta_table_versions_partitions_and_downstream(tmp_path):
    project = delta_project(tmp_path)
    build(project, GOLDEN_RAW)
    table_dir = project / "warehouse" / "marts" / "orders_delta"
    v1 = expected_rows(project)
    dt = DeltaTable(str(table_dir))
    assert dt.version() == 0
    assert dt.metadata().partition_columns == ["order_year"]
    got = dt.to_pyarrow_table()
    assert sorted(zip(got["order_id"].to_pylist(), got["total_amount"].to_pylist())) == v1
    # Hive-style partition folders.
    assert {p.name for p in table_dir.iterdir() if p.is_dir()} >= {"_delta_log"}
    assert any(p.name.startswith("order_year=") for p in table_dir.iterdir())
    # The downstream model read the Delta table.
    reader = pq.read_table(project / "warehouse" / "marts" / "delta_reader.parquet")
    assert sum(reader["orders"].to_pylist()) == len(v1)

    # A second build on other data: one more commit; version 0 still readable.
    raw2 = tmp_path / "raw2"
    subprocess.run([str(WH.parent / "wh-datagen"), "--scale", "0.02", "--seed", "3", "--out", str(raw2)],
                   check=True, capture_output=True)
    build(project, raw2)
    v2 = expected_rows(project)
    dt = DeltaTable(str(table_dir))
    assert dt.version() == 1
    got = dt.to_pyarrow_table()
    assert sorted(zip(got["order_id"].to_pylist(), got["total_amount"].to_pylist())) == v2
    old = DeltaTable(str(table_dir), version=0).to_pyarrow_table()
    assert sorted(zip(old["order_id"].to_pylist(), old["total_amount"].to_pylist())) == v1
    # wh query reads the latest version.
    out = subprocess.run([str(WH), "query", "--format", "csv", "select count(*) as n from orders_delta"],
                         cwd=project, check=True, capture_output=True, text=True)
    assert out.stdout.strip().splitlines()[-1] == str(len(v2))


def test_delta_table_on_s3(s3, tmp_path):
    server = s3
    project = delta_project(tmp_path)
    config = project / "wh_project.yml"
    config.write_text(config.read_text().replace("s3://shop-warehouse/prod", "s3://shop-warehouse/delta"))
    build(project, GOLDEN_RAW, "--target", "prod", env=server.env())
    keys = server.keys("shop-warehouse", "delta/marts/orders_delta/")
    assert "delta/marts/orders_delta/_delta_log/00000000000000000000.json" in keys
    fct = pq.read_table(io.BytesIO(server.get("shop-warehouse", "delta/star/fct_orders.parquet")))
    storage = {"AWS_ENDPOINT_URL": server.endpoint, "AWS_ALLOW_HTTP": "true", "AWS_REGION": "us-east-1",
               "AWS_ACCESS_KEY_ID": server.credentials["AWS_ACCESS_KEY_ID"],
               "AWS_SECRET_ACCESS_KEY": server.credentials["AWS_SECRET_ACCESS_KEY"]}
    dt = DeltaTable("s3://shop-warehouse/delta/marts/orders_delta", storage_options=storage)
    got = dt.to_pyarrow_table()
    assert sorted(zip(got["order_id"].to_pylist(), got["total_amount"].to_pylist())) == expected_rows(None, fct)
    # Rebuild: a second commit on S3.
    build(project, GOLDEN_RAW, "--target", "prod", "--full-refresh", env=server.env())
    assert DeltaTable("s3://shop-warehouse/delta/marts/orders_delta", storage_options=storage).version() == 1
    reader = pq.read_table(io.BytesIO(server.get("shop-warehouse", "delta/marts/delta_reader.parquet")))
    assert sum(reader["orders"].to_pylist()) == fct.num_rows


PARTITIONED_MODEL = """{{ config(partition_by=['order_month']) }}
select order_id, customer_id, total_amount, cast(date_trunc('month', order_date) as date) as order_month
from {{ ref('fct_orders') }}
"""


def partitioned_project(path):
    project = copy_example(path)
    (project / "models" / "marts" / "orders_by_month.sql").write_text(PARTITIONED_MODEL)
    (project / "models" / "marts" / "month_reader.sql").write_text(
        "select order_month, count(*) as orders from {{ ref('orders_by_month') }} group by 1 order by 1")
    return project


def current(read_pointer):
    pointer = json.loads(read_pointer("_current.json"))
    return pointer["version"], pointer["files"]


def test_partitioned_parquet_versions_switch_by_pointer(tmp_path):
    project = partitioned_project(tmp_path)
    root = project / "warehouse" / "marts" / "orders_by_month"
    versions = []
    for seed in [1, 2, 3]:
        raw = tmp_path / f"raw{seed}"
        subprocess.run([str(WH.parent / "wh-datagen"), "--scale", "0.02", "--seed", str(seed), "--out", str(raw)],
                       check=True, capture_output=True)
        build(project, raw)
        version, files = current(lambda name: (root / name).read_text())
        versions.append(version)
        fct = pq.read_table(project / "warehouse" / "star" / "fct_orders.parquet")
        # Hive folders, the partition column kept inside each file.
        for f in files:
            month = f.split("order_month=")[1].split("/")[0]
            table = pq.read_table(root / f)
            assert set(str(v) for v in table["order_month"].to_pylist()) == {month}
        # DuckDB reads the current version with Hive partitioning.
        con = duckdb.connect()
        rows = con.execute(
            f"select order_id, total_amount from read_parquet('{root / version}/**/*.parquet', hive_partitioning=false)"
        ).fetchall()
        assert sorted(rows) == expected_rows(project)
        assert sum(r[0] for r in con.execute(
            f"select count(*) from read_parquet('{root / version}/**/*.parquet') group by order_month").fetchall()
        ) == fct.num_rows
    # The current and the previous version are kept; older ones are gone.
    kept = sorted(p.name for p in root.iterdir() if p.is_dir())
    assert kept == sorted(versions[-2:])
    reader = pq.read_table(project / "warehouse" / "marts" / "month_reader.parquet")
    assert sum(reader["orders"].to_pylist()) == fct.num_rows


def test_partitioned_parquet_on_s3(s3, tmp_path):
    project = partitioned_project(tmp_path)
    config = project / "wh_project.yml"
    config.write_text(config.read_text().replace("s3://shop-warehouse/prod", "s3://shop-warehouse/parts"))
    build(project, GOLDEN_RAW, "--target", "prod", env=s3.env())
    build(project, GOLDEN_RAW, "--target", "prod", "--full-refresh", env=s3.env())
    prefix = "parts/marts/orders_by_month"
    version, files = current(lambda name: s3.get("shop-warehouse", f"{prefix}/{name}"))
    fct = pq.read_table(io.BytesIO(s3.get("shop-warehouse", "parts/star/fct_orders.parquet")))
    rows = []
    for f in files:
        t = pq.read_table(io.BytesIO(s3.get("shop-warehouse", f"{prefix}/{f}")))
        rows += list(zip(t["order_id"].to_pylist(), t["total_amount"].to_pylist()))
    assert sorted(rows) == expected_rows(None, fct)
    folders = {k.split("/")[3] for k in s3.keys("shop-warehouse", prefix + "/") if k.count("/") > 3}
    assert version in folders and len(folders) == 2
    out = subprocess.run([str(WH), "query", "--target", "prod", "--format", "csv",
                          "select count(*) as n from orders_by_month"],
                         cwd=project, env=s3.env(), check=True, capture_output=True, text=True)
    assert out.stdout.strip().splitlines()[-1] == str(fct.num_rows)
