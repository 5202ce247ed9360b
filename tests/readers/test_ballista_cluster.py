"""The example warehouse built on a real Ballista cluster on loopback: wh's
own nodes (`wh cluster scheduler` and two `wh cluster executor`
processes), with the sources and the warehouse on the S3 server
(s3server.py). Every table equals the local build's; a dbt project calling
wh's DuckDB functions gives DuckDB's answers there; an executor killed
while it runs a task leaves a build that finishes right or fails within
its job timeout, never a stall, a wrong table or a scratch object."""

import io
import json
import math
import os
import re
import signal
import subprocess
import time

import pyarrow.parquet as pq
import pytest

from conftest import ROOT, WH, copy_example
from s3server import free_port
from test_dbt_projects import compare_tables, copy_fixture

BUCKET = "shop-warehouse"
DATAGEN = WH.parent / "wh-datagen"
JOB_TIMEOUT = 60
TASK_STARTED = re.compile(r"Execute task  : \[(TID [^\]]+)\]")
TASK_FINISHED = re.compile(r"Finished task : \[(TID [^\]]+)\]")


class Cluster:
    """A scheduler and executors, each a `wh cluster` process on 127.0.0.1.
    A lost executor is noticed within seconds (short heartbeats). Each
    executor has 32 task slots: Ballista 55 never finishes a stage with
    more tasks than the cluster has slots (see the README)."""

    def __init__(self, tmp, env):
        self.tmp, self.env = tmp, env
        self.port = free_port()
        self.procs = {}

    def log(self, name):
        return (self.tmp / f"{name}.log").read_text(errors="replace")

    def _spawn(self, name, args):
        out = open(self.tmp / f"{name}.log", "w")
        self.procs[name] = subprocess.Popen([str(WH), "cluster", *args], env=self.env, stdout=out,
                                            stderr=subprocess.STDOUT)

    def start(self, executors=2):
        self._spawn("scheduler", ["scheduler", "--bind", f"127.0.0.1:{self.port}", "--executor-timeout", "4s"])
        self.wait_for("scheduler", f"listening on df://127.0.0.1:{self.port}")
        for i in range(executors):
            work = self.tmp / f"executor{i}"
            self._spawn(f"executor{i}", [
                "executor", "--scheduler", self.address, "--slots", "32", "--work-dir", str(work),
                "--port", str(free_port()), "--grpc-port", str(free_port()), "--heartbeat", "1s"])
        for i in range(executors):
            self.wait_for(f"executor{i}", "wh cluster executor: registered with")
        return self

    @property
    def address(self):
        return f"df://127.0.0.1:{self.port}"

    def wait_for(self, name, line):
        deadline = time.time() + 60
        while time.time() < deadline:
            if line in self.log(name):
                return
            if self.procs[name].poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(f"{name} did not say {line!r}:\n" + self.tail())

    def tail(self):
        return "\n".join(f"--- {n}\n" + self.log(n)[-3000:] for n in self.procs)

    def running_tasks(self, name):
        """Tasks the executor started and has not finished, by its log."""
        text = self.log(name)
        return set(TASK_STARTED.findall(text)) - set(TASK_FINISHED.findall(text))

    def kill_during_a_task(self, name, build, deadline):
        """Kills the executor while it provably runs a task: it is frozen
        (SIGSTOP) once its log shows a started task; if that task is still
        unfinished in the log of the frozen process, the kill lands inside
        it, else it is thawed and watched again. Returns the task."""
        proc = self.procs[name]
        while time.time() < deadline and build.poll() is None:
            if self.running_tasks(name):
                proc.send_signal(signal.SIGSTOP)
                in_flight = self.running_tasks(name)
                if in_flight:
                    proc.send_signal(signal.SIGKILL)
                    proc.wait()
                    return sorted(in_flight)[0]
                proc.send_signal(signal.SIGCONT)
            time.sleep(0.002)
        raise AssertionError("no task of the build ran on " + name + "\n" + self.tail())

    def stop(self):
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGCONT)
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


def cluster_build(project, cluster):
    return [str(WH), "build", "--target", "prod", "--engine", "ballista", "--scheduler", cluster.address,
            "--job-timeout", f"{JOB_TIMEOUT}s", "--vars", "{raw_root: 's3://shop-raw/cluster'}"]


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


def test_the_example_on_wh_cluster_nodes_with_s3_equals_the_local_build(s3, raw, local, cluster, tmp_path):
    (tmp_path / "p").mkdir()
    project = copy_example(tmp_path / "p")
    on_cluster(project, "cluster")
    out = subprocess.run(cluster_build(project, cluster), cwd=project, env=s3.env(), capture_output=True, text=True,
                         timeout=900)
    assert out.returncode == 0, out.stderr + cluster.tail()
    assert f"on Ballista at {cluster.address}" in out.stderr
    expected = local_tables(local)
    assert len(expected) == 32
    for rel, table in expected.items():
        remote = pq.read_table(io.BytesIO(s3.get(BUCKET, f"cluster/{rel}")))
        assert remote.schema == table.schema, rel
        assert same_rows(remote, table), rel
    keys = s3.keys(BUCKET, "cluster/")
    assert not [k for k in keys if "/_wh/scratch/" in k], "scratch files left behind"
    results = json.loads(s3.get(BUCKET, "cluster/_wh/run_results.json"))
    assert {r["status"] for r in results["results"]} <= {"success", "pass", "warn"}
    # The queries ran on the executors: both ran tasks, and the scheduler
    # saw the jobs through.
    for name in ("executor0", "executor1"):
        assert TASK_FINISHED.search(cluster.log(name)), cluster.tail()
    assert "Job finished successfully" in cluster.log("scheduler")


def test_duckdb_functions_run_on_wh_executors_with_duckdbs_answers(cluster, tmp_path):
    """A dbt project calling wh's DuckDB functions (date_diff, dayname,
    count_if, arg_max, strftime, ...) built on the cluster: every table
    equals what DuckDB computes from the same compiled SQL."""
    project = copy_fixture("duckdb_sql", tmp_path)
    out = wh(project, "build", "--engine", "ballista", "--scheduler", cluster.address, check=False)
    assert out.returncode == 0, out.stderr + cluster.tail()
    assert f"on Ballista at {cluster.address}" in out.stderr
    manifest = json.loads((project / "target" / "manifest.json").read_text())
    sql = manifest["nodes"]["model.duckdb_sql.duckdb_aggregates"]["compiled_code"]
    assert "count_if" in sql and "arg_max" in sql, sql
    compared = compare_tables(project, manifest, project / "warehouse")
    assert sorted(compared) == ["aggregates", "arithmetic", "date_functions", "dates", "duckdb_aggregates", "events",
                                "strings", "windows"]
    assert "Job finished successfully" in cluster.log("scheduler")


def test_an_executor_killed_during_a_task_never_leaves_a_stall_or_a_wrong_table(s3, raw, local, cluster, tmp_path):
    (tmp_path / "p").mkdir()
    project = copy_example(tmp_path / "p")
    on_cluster(project, "killed")
    build = subprocess.Popen(cluster_build(project, cluster), cwd=project, env=s3.env(), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    task = cluster.kill_during_a_task("executor1", build, time.time() + 300)
    # Retried on the other executor, or failed by the job timeout: either
    # way the build ends, well within a bound (no stall is accepted).
    try:
        _, err = build.communicate(timeout=10 * JOB_TIMEOUT)
    except subprocess.TimeoutExpired:
        build.kill()
        raise AssertionError(f"the build stalled after {task} was killed\n" + cluster.tail())
    assert build.returncode in (0, 1), err
    # The killed task's job is one the scheduler ran for this build.
    job = task.split()[1].split("/")[0]
    assert job in cluster.log("scheduler"), cluster.tail()
    expected = local_tables(local)
    published = {k[len("killed/"):] for k in s3.keys(BUCKET, "killed/") if k.endswith(".parquet")}
    if build.returncode == 0:
        assert set(expected) <= published, err
    else:
        # A clear failure names the model and the timeout.
        assert "error: model `" in err and "did not finish within the job timeout of 1m" in err, err
    # Whatever was published is whole and right; nothing temporary is left.
    for rel, table in expected.items():
        if rel in published:
            remote = pq.read_table(io.BytesIO(s3.get(BUCKET, f"killed/{rel}")))
            assert same_rows(remote, table), f"{rel} is published but differs from the local build"
    leftovers = [k for k in s3.keys(BUCKET, "killed/") if ".wh-tmp-" in k or "/_wh/scratch/" in k]
    assert not leftovers, leftovers
    # The next build on the cluster that is left completes the warehouse.
    out = subprocess.run(cluster_build(project, cluster), cwd=project, env=s3.env(), capture_output=True, text=True,
                         timeout=900)
    assert out.returncode == 0, out.stderr + cluster.tail()
    for rel, table in expected.items():
        assert same_rows(pq.read_table(io.BytesIO(s3.get(BUCKET, f"killed/{rel}"))), table), rel
