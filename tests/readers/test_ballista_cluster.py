"""The example warehouse built on a real Ballista cluster on loopback: the
crates.io `ballista-scheduler` and two `ballista-executor` processes (which
scripts/test.sh installs into .tools/ballista), with the sources and the
warehouse on the S3 server (s3server.py). Every table equals the local
build's; an executor stopped during a build gives a correct warehouse
(its tasks retried on the other) or a clear failure, never a wrong or
partial mart."""

import io
import json
import math
import os
import pathlib
import signal
import subprocess
import time
import urllib.request

import pyarrow.parquet as pq
import pytest

from conftest import ROOT, WH, copy_example
from s3server import free_port

BIN = pathlib.Path(os.environ.get("BALLISTA_BIN", ROOT / ".tools" / "ballista" / "bin"))
BUCKET = "shop-warehouse"
DATAGEN = WH.parent / "wh-datagen"

pytestmark = pytest.mark.skipif(
    not (BIN / "ballista-scheduler").exists() and os.environ.get("WH_REQUIRE_BALLISTA") != "1",
    reason="the Ballista binaries are not installed (scripts/test.sh installs them)",
)


class Cluster:
    """A scheduler and executors, each its own process, on 127.0.0.1. A
    lost executor is noticed within seconds (short heartbeats). Each
    executor has 32 task slots: Ballista 55 never finishes a stage with
    more tasks than the cluster has slots (see the README)."""

    def __init__(self, tmp, env):
        self.tmp, self.env = tmp, env
        self.port = free_port()
        self.procs = {}
        self.logs = []

    def _spawn(self, name, args):
        log = open(self.tmp / f"{name}.log", "w")
        self.logs.append(self.tmp / f"{name}.log")
        self.procs[name] = subprocess.Popen([str(BIN / args[0]), *args[1:]], env=self.env, stdout=log,
                                            stderr=subprocess.STDOUT)

    def start(self, executors=2):
        self._spawn("scheduler", ["ballista-scheduler", "--bind-host", "127.0.0.1", "--bind-port", str(self.port),
                                  "--executor-timeout-seconds", "6", "--expire-dead-executor-interval-seconds", "1"])
        for i in range(executors):
            work = self.tmp / f"executor{i}"
            work.mkdir()
            self._spawn(f"executor{i}", [
                "ballista-executor", "--scheduler-host", "127.0.0.1", "--scheduler-port", str(self.port),
                "--bind-host", "127.0.0.1", "--external-host", "127.0.0.1",
                "--bind-port", str(free_port()), "--bind-grpc-port", str(free_port()),
                "--bind-health-port", str(free_port()), "--work-dir", str(work), "--vcores", "32",
                "--executor-heartbeat-interval-seconds", "1", "--scheduler-connect-timeout-seconds", "30"])
        self.wait_ready(executors)
        return self

    def wait_ready(self, executors):
        """Waits until the scheduler's REST API lists the executors."""
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/api/executors", timeout=2) as r:
                    if len(json.loads(r.read())) >= executors:
                        return
            except OSError:
                pass
            time.sleep(0.3)
        raise AssertionError("the cluster did not start:\n" + self.tail())

    def tail(self):
        return "\n".join(f"--- {p.name}\n" + p.read_text()[-3000:] for p in self.logs)

    def kill(self, name):
        self.procs[name].send_signal(signal.SIGKILL)
        self.procs[name].wait()

    def stop(self):
        for p in self.procs.values():
            if p.poll() is None:
                p.terminate()
        for p in self.procs.values():
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()


@pytest.fixture(scope="module")
def raw(tmp_path_factory, s3):
    """Shop data large enough for several partitions per query, on S3."""
    out = tmp_path_factory.mktemp("raw")
    subprocess.run([str(DATAGEN), "--out", str(out), "--scale", "0.2", "--seed", "5"], check=True,
                   capture_output=True)
    for f in sorted(out.glob("*.parquet")):
        s3.put_file("shop-raw", f"cluster/{f.name}", f)
    return out


@pytest.fixture(scope="module")
def local(tmp_path_factory, raw):
    project = copy_example(tmp_path_factory.mktemp("local"))
    wh(project, "build", "--quiet", "--vars", f"{{raw_root: '{raw}'}}")
    return project


@pytest.fixture()
def cluster(tmp_path, s3):
    c = Cluster(tmp_path, s3.env()).start()
    yield c
    c.stop()


def wh(project, *args, env=None, check=True, timeout=900):
    return subprocess.run([str(WH), *args], cwd=project, env=env, capture_output=True, text=True, check=check,
                          timeout=timeout)


def on_cluster(project, prefix):
    path = project / "wh_project.yml"
    path.write_text(path.read_text().replace("s3://shop-warehouse/prod", f"s3://{BUCKET}/{prefix}"))


def same_rows(a, b):
    """The same rows in the same order, but for the last bits of float
    sums, whose order of addition differs across executors."""
    if a.num_rows != b.num_rows:
        return False
    for x, y in zip(a.to_pylist(), b.to_pylist()):
        for k in x:
            u, v = x[k], y[k]
            if isinstance(u, float) and isinstance(v, float):
                if not math.isclose(u, v, rel_tol=1e-9, abs_tol=1e-9):
                    return False
            elif u != v:
                return False
    return True


def local_tables(project):
    out = {}
    for f in sorted((project / "warehouse").rglob("*.parquet")):
        rel = f.relative_to(project / "warehouse").as_posix()
        if not rel.startswith(("_wh/", "snapshots/")):
            out[rel] = pq.read_table(f)
    return out


def test_the_example_on_a_ballista_cluster_with_s3_equals_the_local_build(s3, raw, local, cluster, tmp_path):
    (tmp_path / "p").mkdir()
    project = copy_example(tmp_path / "p")
    on_cluster(project, "cluster")
    out = wh(project, "build", "--target", "prod", "--engine", "ballista", "--scheduler",
             f"df://127.0.0.1:{cluster.port}", "--vars", "{raw_root: 's3://shop-raw/cluster'}", env=s3.env(),
             check=False)
    assert out.returncode == 0, out.stderr + cluster.tail()
    assert f"on Ballista at df://127.0.0.1:{cluster.port}" in out.stderr
    expected = local_tables(local)
    assert len(expected) == 30
    for rel, table in expected.items():
        remote = pq.read_table(io.BytesIO(s3.get(BUCKET, f"cluster/{rel}")))
        assert remote.schema == table.schema, rel
        assert same_rows(remote, table), rel
    keys = s3.keys(BUCKET, "cluster/")
    assert not [k for k in keys if "/_wh/scratch/" in k], "scratch files left behind"
    results = json.loads(s3.get(BUCKET, "cluster/_wh/run_results.json"))
    assert {r["status"] for r in results["results"]} <= {"success", "pass", "warn"}
    # The queries ran on the executors: their logs name the jobs.
    assert "job" in cluster.tail().lower()


def test_an_executor_stopped_during_a_build_never_leaves_a_wrong_or_partial_mart(s3, raw, local, cluster,
                                                                                   tmp_path):
    (tmp_path / "p").mkdir()
    project = copy_example(tmp_path / "p")
    on_cluster(project, "killed")
    args = [str(WH), "build", "--target", "prod", "--engine", "ballista", "--scheduler",
            f"df://127.0.0.1:{cluster.port}", "--vars", "{raw_root: 's3://shop-raw/cluster'}"]
    build = subprocess.Popen(args, cwd=project, env=s3.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    # Once the first tables are published, one executor dies.
    deadline = time.time() + 300
    while time.time() < deadline and build.poll() is None:
        if any(k.endswith("stg_orders.parquet") for k in s3.keys(BUCKET, "killed/")):
            break
        time.sleep(0.05)
    cluster.kill("executor1")
    try:
        _, err = build.communicate(timeout=240)
        stalled = False
    except subprocess.TimeoutExpired:
        # Ballista 55 can leave a job whose stage it rolled back after the
        # loss waiting forever (seen in one of two runs here): the operator
        # stops the build, and what it published must still be right.
        build.kill()
        _, err = build.communicate()
        stalled = True
    assert stalled or build.returncode in (0, 1), err
    expected = local_tables(local)
    published = {k[len("killed/"):] for k in s3.keys(BUCKET, "killed/") if k.endswith(".parquet")}
    if stalled:
        pass
    elif build.returncode == 0:
        # Retried on the other executor: the whole warehouse is right.
        assert set(expected) <= published, err
    else:
        # A clear failure names the model and why; nothing after it ran.
        assert "error: model `" in err and "failed" in err, err
    for rel, table in expected.items():
        if rel in published:
            remote = pq.read_table(io.BytesIO(s3.get(BUCKET, f"killed/{rel}")))
            assert same_rows(remote, table), f"{rel} is published but differs from the local build"
    if not stalled:
        assert not [k for k in s3.keys(BUCKET, "killed/") if ".wh-tmp-" in k or "/_wh/scratch/" in k]
    # The next build on the cluster that is left completes the warehouse.
    out = wh(project, "build", "--target", "prod", "--engine", "ballista", "--scheduler",
             f"df://127.0.0.1:{cluster.port}", "--vars", "{raw_root: 's3://shop-raw/cluster'}", env=s3.env(),
             check=False)
    assert out.returncode == 0, out.stderr + cluster.tail()
    for rel, table in expected.items():
        assert same_rows(pq.read_table(io.BytesIO(s3.get(BUCKET, f"killed/{rel}"))), table), rel
