"""The example warehouse built to S3 (a real S3 API server on loopback, see
s3server.py): the same bytes as the local build, sources read from S3,
atomic publish when the server goes away mid-build, and refused
credentials that never show the secret."""

import io
import json
import pathlib
import shutil
import subprocess

import duckdb
import pyarrow.parquet as pq
import pytest

from conftest import GOLDEN_RAW, WH, copy_example

BUCKET = "shop-warehouse"
MODELS = {
    "staging": ["stg_customers", "stg_orders", "stg_order_items", "stg_products"],
    "star": ["dim_customers", "dim_products", "dim_date", "fct_orders", "fct_order_items"],
    "marts": ["mart_customer_rfm", "customer_order_summary"],
}


def wh(project, *args, env=None, check=True):
    return subprocess.run([str(WH), *args], cwd=project, env=env, capture_output=True, text=True, check=check)


def vars_for(raw):
    return f"{{raw_root: '{raw}'}}"


def with_prefix(project, prefix):
    """Points the example's `prod` target at another prefix of the bucket."""
    path = project / "wh_project.yml"
    path.write_text(path.read_text().replace("s3://shop-warehouse/prod", f"s3://{BUCKET}/{prefix}"))


@pytest.fixture(scope="module")
def local(tmp_path_factory):
    project = copy_example(tmp_path_factory.mktemp("local"))
    wh(project, "build", "--quiet", "--vars", vars_for(GOLDEN_RAW))
    return project


def model_files(project):
    out = {}
    for folder in (project / "warehouse").iterdir():
        if folder.name != "_wh" and folder.is_dir():
            # Snapshots record the time of the build that wrote them.
            if folder.name == "snapshots":
                continue
            for f in folder.glob("*.parquet"):
                out[f"{folder.name}/{f.name}"] = f.read_bytes()
    return out


def test_prod_build_on_s3_equals_the_local_build(s3, local, tmp_path):
    project = copy_example(tmp_path)
    with_prefix(project, "equal")
    out = wh(project, "build", "--target", "prod", "--vars", vars_for(GOLDEN_RAW), env=s3.env())
    assert "s3://shop-warehouse/equal" in out.stderr
    keys = s3.keys(BUCKET, "equal/")
    expected = model_files(local)
    assert len(expected) == 18  # 15 SPEC models, rfm_segment_changes, daily_category_revenue, daily_revenue_forecast
    for rel, data in expected.items():
        remote = s3.get(BUCKET, f"equal/{rel}")
        # Same rows, and the same bytes: the writer is deterministic.
        assert pq.read_table(io.BytesIO(remote)).equals(pq.read_table(io.BytesIO(data))), rel
        assert remote == data, rel
    # Records of the run live beside the data; nothing temporary is left.
    assert "equal/_wh/run_results.json" in keys
    assert any(k.startswith("equal/_wh/test_results/") and k.endswith(".parquet") for k in keys)
    assert not [k for k in keys if ".wh-tmp-" in k]
    results = json.loads(s3.get(BUCKET, "equal/_wh/run_results.json"))
    assert {r["status"] for r in results["results"] if r["unique_id"].startswith("model.")} == {"success"}
    # The catalog reads the footers over S3.
    catalog = json.loads((project / "target" / "catalog.json").read_text())
    assert catalog["nodes"]["model.shop.fct_orders"]["stats"]["row_count"]["value"] == \
        pq.read_metadata(io.BytesIO(expected["star/fct_orders.parquet"])).num_rows
    # OpenLineage names S3 datasets by bucket and key.
    events = [json.loads(l) for l in (project / "target" / "openlineage.jsonl").read_text().splitlines()]
    outputs = {o["name"] for e in events for o in e["outputs"] if o["namespace"] == "s3://shop-warehouse"}
    assert "equal/marts/customer_order_summary.parquet" in outputs


def test_marts_on_s3_open_in_pyarrow_and_duckdb(s3, local, tmp_path):
    (tmp_path / "p").mkdir()
    project = copy_example(tmp_path / "p")
    with_prefix(project, "readers")
    wh(project, "build", "--target", "prod", "--vars", vars_for(GOLDEN_RAW), env=s3.env())
    for name in MODELS["marts"]:
        data = s3.get(BUCKET, f"readers/marts/{name}.parquet")
        table = pq.read_table(io.BytesIO(data))
        path = tmp_path / f"{name}.parquet"
        path.write_bytes(data)
        con = duckdb.connect()
        rows = con.execute(f"select count(*) from read_parquet('{path}')").fetchone()[0]
        assert rows == table.num_rows > 0
        assert table.equals(pq.read_table(local / "warehouse" / "marts" / f"{name}.parquet"))


def test_wh_query_and_test_read_the_s3_warehouse(s3, tmp_path):
    project = copy_example(tmp_path)
    with_prefix(project, "query")
    wh(project, "build", "--target", "prod", "--quiet", "--vars", vars_for(GOLDEN_RAW), env=s3.env())
    out = wh(project, "query", "--target", "prod", "--format", "csv",
             "select count(*) as n from customer_order_summary", env=s3.env())
    local_rows = pq.read_table(io.BytesIO(s3.get(BUCKET, "query/marts/customer_order_summary.parquet"))).num_rows
    assert out.stdout.strip().splitlines()[-1] == str(local_rows)
    tested = wh(project, "test", "--target", "prod", "--vars", vars_for(GOLDEN_RAW), env=s3.env())
    assert "PASS" in tested.stderr
    history = [k for k in s3.keys(BUCKET, "query/_wh/test_results/")]
    assert len(history) == 2  # the build's and the test's


def test_sources_read_from_s3(s3, local, tmp_path):
    for f in GOLDEN_RAW.glob("*.parquet"):
        s3.put_file("shop-raw", f"golden/{f.name}", f)
    project = copy_example(tmp_path)
    wh(project, "build", "--quiet", "--vars", vars_for("s3://shop-raw/golden"), env=s3.env())
    assert model_files(project) == model_files(local)


def test_wrong_credentials_name_the_target_not_the_secret(s3, tmp_path):
    project = copy_example(tmp_path)
    secret = "wrong-secret-9f8e7d6c5b4a"
    env = s3.env(AWS_SECRET_ACCESS_KEY=secret)
    out = wh(project, "build", "--target", "prod", "--vars", vars_for(GOLDEN_RAW), env=env, check=False)
    assert out.returncode == 2, out.stderr
    assert "target `prod`" in out.stderr and "s3://shop-warehouse/prod" in out.stderr
    assert "credentials were refused" in out.stderr
    assert "--> wh_project.yml:" in out.stderr and "hint:" in out.stderr
    assert secret not in out.stdout + out.stderr
    for f in (project / "target").rglob("*"):
        if f.is_file():
            assert secret.encode() not in f.read_bytes(), f


def test_server_stopping_mid_build_keeps_every_object_whole(s3, tmp_path):
    raw_v1 = GOLDEN_RAW
    raw_v2 = tmp_path / "raw_v2"
    subprocess.run([str(WH.parent / "wh-datagen"), "--scale", "0.02", "--seed", "7", "--out", str(raw_v2)],
                   check=True, capture_output=True)
    # Local twins of both versions.
    twins = {}
    for version, raw in [("v1", raw_v1), ("v2", raw_v2)]:
        (tmp_path / version).mkdir()
        p = copy_example(tmp_path / version)
        wh(p, "build", "--quiet", "--vars", vars_for(raw))
        twins[version] = model_files(p)
    (tmp_path / "remote").mkdir()
    project = copy_example(tmp_path / "remote")
    with_prefix(project, "crash")
    # A view: `wh run --select v_probe` takes the lock and writes no table.
    (project / "models" / "v_probe.sql").write_text("{{ config(materialized='view') }}\nselect 1 as x\n")
    wh(project, "build", "--target", "prod", "--quiet", "--vars", vars_for(raw_v1), env=s3.env())
    before = set(s3.keys(BUCKET, "crash/"))
    # Snapshots carry their build's time, so they have no local twin: compare
    # them with what the first remote build wrote.
    snapshots = {k: s3.get(BUCKET, k) for k in before if k.startswith("crash/snapshots/")}
    assert len(snapshots) == 2

    s3.stop_after_puts(5)
    out = wh(project, "build", "--target", "prod", "--threads", "1", "--vars", vars_for(raw_v2),
             env=s3.env(), check=False)
    s3.listen()
    assert out.returncode == 1, out.stderr
    # The build's tables are published together at its end, each by a
    # server-side copy: the server went away during that step.
    assert "not published yet: publishing stopped after 5 of" in out.stderr, out.stderr
    assert "the next wh command completes the publishing from the journal" in out.stderr, out.stderr
    # Every model object is whole: the previous version or the new one.
    versions = {}
    for rel in twins["v1"]:
        data = s3.get(BUCKET, f"crash/{rel}")
        versions[rel] = "v1" if data == twins["v1"][rel] else "v2" if data == twins["v2"][rel] else "torn"
    assert "torn" not in versions.values(), versions
    for key, old in snapshots.items():
        data = s3.get(BUCKET, key)
        versions[key] = "v1" if data == old else "v2"
        assert pq.read_table(io.BytesIO(data)).num_rows > 0, key
    # The server took 5 copies: 5 objects are new, none torn.
    assert list(versions.values()).count("v2") == 5, versions
    # No object appeared outside `_wh/` that was not there or a model's.
    after = set(s3.keys(BUCKET, "crash/"))
    assert not [k for k in after - before if not k.startswith("crash/_wh/")], after - before
    assert "crash/_wh/journal.json" in after
    # The next command completes the step: every table is the new build's.
    out = wh(project, "run", "--target", "prod", "--select", "v_probe", "--vars", vars_for(raw_v2),
             env=s3.env(), check=False)
    assert out.returncode == 0, out.stderr
    assert "Completed the publishing of run" in out.stderr, out.stderr
    def rows(data):
        return sorted(json.dumps(r, sort_keys=True, default=str) for r in pq.read_table(io.BytesIO(data)).to_pylist())
    # (The segment feed lists the changes since the previous build, which
    # here was v1: it has no twin.)
    for rel in (r for r in twins["v2"] if "rfm_segment_changes" not in r):
        assert rows(s3.get(BUCKET, f"crash/{rel}")) == rows(twins["v2"][rel]), rel
    assert not [k for k in s3.keys(BUCKET, "crash/") if "/_wh/staged/" in k or k.endswith("_wh/journal.json")]


def test_sources_on_s3_as_csv_prefix_and_glob(s3, local, tmp_path):
    import pyarrow.csv as pcsv

    raw = GOLDEN_RAW
    customers = tmp_path / "customers.csv"
    pcsv.write_csv(pq.read_table(raw / "customers.parquet"), customers)
    s3.put_file("shop-raw", "mixed/customers.csv", customers)
    s3.put_file("shop-raw", "mixed/products.parquet", raw / "products.parquet")
    s3.put_file("shop-raw", "mixed/orders/part-0.parquet", raw / "orders.parquet")
    s3.put_file("shop-raw", "mixed/items-1.parquet", raw / "order_items.parquet")
    project = copy_example(tmp_path)
    sources = (project / "sources.yml").read_text()
    for table, location in [
        ("customers", "s3://shop-raw/mixed/customers.csv\"\n        format: csv\n        x: \""),
        ("products", "s3://shop-raw/mixed/products.parquet"),
        ("orders", "s3://shop-raw/mixed/orders/"),
        ("order_items", "s3://shop-raw/mixed/items-*.parquet"),
    ]:
        sources = sources.replace(f"\"{{{{ var('raw_root', 'data/raw') }}}}/{table}.parquet\"", f"\"{location}\"")
    sources = sources.replace("\n        x: \"\"", "")
    (project / "sources.yml").write_text(sources)
    wh(project, "build", "--quiet", env=s3.env())
    built = model_files(project)
    assert set(built) == set(model_files(local))
    for rel, data in model_files(local).items():
        assert pq.read_table(io.BytesIO(built[rel])).equals(pq.read_table(io.BytesIO(data))), rel


def test_damaged_parquet_sources_on_s3_fail_their_models_without_a_panic(s3, tmp_path):
    """The footer check for sources on S3: a footer length past the start
    of the object (which overflowed the Parquet reader) and a truncated
    object, each as a single object and inside a folder source."""
    data = (GOLDEN_RAW / "orders.parquet").read_bytes()
    long_footer = data[:-8] + (len(data) * 2).to_bytes(4, "little") + b"PAR1"
    for name, body, location in [
        ("footer", long_footer, "s3://shop-raw/damaged/footer/orders.parquet"),
        ("truncated", data[: len(data) // 2], "s3://shop-raw/damaged/truncated/"),
    ]:
        key = location[len("s3://shop-raw/"):]
        key = key + "part-0.parquet" if key.endswith("/") else key
        s3.client().put_object(Bucket="shop-raw", Key=key, Body=body)
        (tmp_path / name).mkdir()
        project = copy_example(tmp_path / name)
        sources = (project / "sources.yml").read_text()
        old = "\"{{ var('raw_root', 'data/raw') }}/orders.parquet\""
        assert old in sources
        (project / "sources.yml").write_text(sources.replace(old, f"\"{location}\""))
        out = wh(project, "build", "--vars", vars_for(GOLDEN_RAW), env=s3.env(), check=False)
        assert out.returncode == 1, (name, out.stderr)
        assert "not a whole Parquet file" in out.stderr and "source `shop.orders`" in out.stderr, (name, out.stderr)
        assert "panicked" not in out.stderr, (name, out.stderr)


def test_lock_on_s3_names_the_run_that_holds_it(s3, tmp_path):
    import os

    project = copy_example(tmp_path)
    with_prefix(project, "locked")
    host = pathlib.Path("/etc/hostname").read_text().strip()
    holder = {"run_id": "other-run", "command": "build", "user": "scheduler", "host": host,
              "pid": os.getpid(), "started_at": "2026-11-22T00:00:00Z"}
    s3.client().put_object(Bucket=BUCKET, Key="locked/_wh/lock", Body=json.dumps(holder).encode())
    out = wh(project, "build", "--target", "prod", "--vars", vars_for(GOLDEN_RAW), env=s3.env(), check=False)
    assert out.returncode == 2, out.stderr
    assert "is locked by run other-run (`wh build` by scheduler@" in out.stderr
    assert not [k for k in s3.keys(BUCKET, "locked/") if k.endswith(".parquet")]
    # Freed: the build runs, takes the lock with a conditional PUT, and frees it.
    s3.client().delete_object(Bucket=BUCKET, Key="locked/_wh/lock")
    wh(project, "build", "--target", "prod", "--quiet", "--vars", vars_for(GOLDEN_RAW), env=s3.env())
    keys = s3.keys(BUCKET, "locked/")
    assert "locked/marts/customer_order_summary.parquet" in keys and "locked/_wh/lock" not in keys
