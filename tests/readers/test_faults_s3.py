"""The S3 half of the fault-injection matrix (the local half and the list
of failpoints: tests/it/faults.rs, src/failpoint.rs): each failpoint a build
passes on an S3 warehouse, as a crash and as an I/O error, against a real
S3 API server on loopback. After each case every object is its previous
version or its new one, whole; after the next command a crashed build's
tables are all old or all new; the next build equals a build without
faults and leaves nothing under `_wh/staged/`, `_wh/scratch/` or a journal.
Delta tables are left out here (they commit through delta-rs, covered
locally)."""

import io
import json
import pathlib
import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pyarrow.parquet as pq
import pytest

from conftest import ROOT, WH

BUCKET = "shop-warehouse"
FIXTURE = ROOT / "tests" / "fixtures" / "projects" / "faults"
NEW = "{events: 'raw/new.csv'}"
OLD = "{events: 'raw/old.csv'}"
CRASH_EXIT = 86
# The failpoints where an S3 warehouse takes its own path: the lock and
# the journal as objects, staged uploads, server-side copies, the `_wh/`
# files, an incremental model's previous version read from the store.
# Those that only touch local files or memory on either storage
# (`model.before_assertions`, `snapshot.merge`, `artifacts.write`: the
# artifacts live in the project's `target/`) and Delta run in the local
# matrix only.
FAILPOINTS = [
    "lock.taken", "stage.written", "incremental.merge",
    "commit.before_journal", "commit.after_journal", "commit.before_publish", "commit.after_publish",
    "commit.before_cleanup", "history.write", "state.write",
]
AFTER_JOURNAL = {"commit.after_journal", "commit.before_publish", "commit.after_publish", "commit.before_cleanup",
                 "history.write", "state.write"}


def project(dest, prefix):
    shutil.copytree(FIXTURE, dest)
    (dest / "models" / "events_delta.sql").unlink()
    (dest / "wh_project.yml").write_text(
        f"name: faults\ntargets:\n  dev:\n    warehouse: s3://{BUCKET}/{prefix}\n    threads: 2\n"
        "    s3: {region: us-east-1}\n")
    return dest


def wh(s3, cwd, *args, failpoints=None):
    env = s3.env()
    env.pop("FAILPOINTS", None)
    if failpoints:
        env["FAILPOINTS"] = failpoints
    return subprocess.run([str(WH), *args], cwd=cwd, env=env, capture_output=True, text=True)


def tables(s3, prefix):
    """Each table of the warehouse at `prefix`: bytes, or rows where equal
    builds write different files."""
    keys = set(s3.keys(BUCKET, f"{prefix}/"))
    out = {}
    for rel in ["stg_events.parquet", "events_inc.parquet", "by_day.parquet", "by_day.csv"]:
        if f"{prefix}/{rel}" in keys:
            out[rel] = s3.get(BUCKET, f"{prefix}/{rel}")
    if f"{prefix}/by_day_parts/_current.json" in keys:
        pointer = json.loads(s3.get(BUCKET, f"{prefix}/by_day_parts/_current.json"))
        rows = []
        for f in pointer["files"]:
            rows += pq.read_table(io.BytesIO(s3.get(BUCKET, f"{prefix}/by_day_parts/{f}"))).to_pylist()
        out["by_day_parts"] = sorted(json.dumps(r, sort_keys=True, default=str) for r in rows)
    if f"{prefix}/snapshots/snp_events.parquet" in keys:
        t = pq.read_table(io.BytesIO(s3.get(BUCKET, f"{prefix}/snapshots/snp_events.parquet"))).to_pylist()
        out["snp_events"] = sorted((r["id"], r["v"], r["dbt_valid_to"] is None) for r in t)
    return out


def leftovers(s3, prefix):
    return [k for k in s3.keys(BUCKET, f"{prefix}/")
            if "/_wh/staged/" in k or "/_wh/scratch/" in k or k.endswith("/_wh/journal.json") or ".wh-tmp-" in k]


def copy_prefix(s3, src, dest):
    client = s3.client()
    for key in s3.keys(BUCKET, f"{src}/"):
        client.copy_object(Bucket=BUCKET, Key=dest + key[len(src):], CopySource={"Bucket": BUCKET, "Key": key})


@pytest.fixture(scope="module")
def baseline(s3, tmp_path_factory):
    root = tmp_path_factory.mktemp("faults")
    old = project(root / "old", "faults-old")
    assert wh(s3, old, "build", "--vars", OLD).returncode == 0
    ref = project(root / "ref", "faults-ref")
    assert wh(s3, ref, "build", "--vars", OLD).returncode == 0
    out = wh(s3, ref, "build", "--vars", NEW)
    assert out.returncode == 0, out.stderr
    before, after = tables(s3, "faults-old"), tables(s3, "faults-ref")
    assert len(before) == 6 and all(before[k] != after[k] for k in before), before.keys()
    return {"root": root, "old_project": old, "old": before, "new": after}


def run_case(s3, base, i, failpoint, mode):
    name = f"{failpoint} x {mode}"
    prefix = f"faults-case{i}"
    cwd = base["root"] / f"case{i}"
    shutil.copytree(base["old_project"], cwd)
    (cwd / "wh_project.yml").write_text((cwd / "wh_project.yml").read_text().replace("faults-old", prefix))
    copy_prefix(s3, "faults-old", prefix)
    out = wh(s3, cwd, "build", "--vars", NEW, failpoints=f"{failpoint}=return({mode})")
    if mode == "crash":
        assert f"failpoint `{failpoint}`: crashing" in out.stderr, f"{name}: not reached\n{out.stderr}"
        assert out.returncode == CRASH_EXIT, f"{name}\n{out.stderr}"
    else:
        assert f"injected I/O error at failpoint `{failpoint}`" in out.stderr, f"{name}: not named\n{out.stderr}"
        assert out.returncode in (1, 2), f"{name}: exit {out.returncode}\n{out.stderr}"
    faulted = tables(s3, prefix)
    assert faulted.keys() == base["old"].keys(), name
    for rel, value in faulted.items():
        assert value in (base["old"][rel], base["new"][rel]), f"{name}: {rel} is neither version"
    state = s3.keys(BUCKET, f"{prefix}/_wh/state.json")
    if state:
        json.loads(s3.get(BUCKET, state[0]))
    nxt = wh(s3, cwd, "run", "--select", "v_events", "--vars", NEW)
    assert nxt.returncode == 0, f"{name}\n{nxt.stderr}"
    if mode == "crash":
        expected = base["new"] if failpoint in AFTER_JOURNAL else base["old"]
        assert tables(s3, prefix) == expected, f"{name}: the builds are mixed after the next command"
    assert leftovers(s3, prefix) == [], name
    again = wh(s3, cwd, "build", "--vars", NEW)
    assert again.returncode == 0, f"{name}\n{again.stderr}"
    assert tables(s3, prefix) == base["new"], f"{name}: the next build differs from one without faults"
    assert leftovers(s3, prefix) == [], name
    return f"{name}: exit {out.returncode}"


def test_every_failpoint_on_s3_leaves_each_object_whole_and_the_next_build_right(s3, baseline):
    cases = [(f, m) for f in FAILPOINTS for m in ("crash", "io")]
    with ThreadPoolExecutor(max_workers=3) as pool:
        report = list(pool.map(lambda c: run_case(s3, baseline, c[0], *c[1]), enumerate(cases)))
    assert len(report) == 2 * len(FAILPOINTS) == 20
    print(f"{len(report)} S3 fault cases:\n" + "\n".join(report))


def is_copy(prefix):
    """The publishing step's requests: server-side copies into `prefix`."""
    return lambda env: env["REQUEST_METHOD"] == "PUT" and "HTTP_X_AMZ_COPY_SOURCE" in env \
        and f"/{prefix}/" in env.get("PATH_INFO", "")


def is_staged_upload(prefix):
    return lambda env: env["REQUEST_METHOD"] == "PUT" and "HTTP_X_AMZ_COPY_SOURCE" not in env \
        and f"/{prefix}/_wh/staged/" in env.get("PATH_INFO", "")


def fresh_case(s3, base, prefix):
    cwd = base["root"] / prefix
    if cwd.exists():
        shutil.rmtree(cwd)
    shutil.copytree(base["old_project"], cwd)
    (cwd / "wh_project.yml").write_text((cwd / "wh_project.yml").read_text().replace("faults-old", prefix))
    for key in s3.keys(BUCKET, f"{prefix}/"):
        s3.client().delete_object(Bucket=BUCKET, Key=key)
    copy_prefix(s3, "faults-old", prefix)
    return cwd


def test_s3_failing_mid_build_is_retried_or_fails_clearly_and_the_next_command_completes(s3, baseline):
    base = baseline
    # Two 503s on the publishing step's copies: object_store retries them.
    cwd = fresh_case(s3, base, "proxy-503")
    s3.inject(is_copy("proxy-503"), status=503, count=2)
    out = wh(s3, cwd, "build", "--vars", NEW)
    assert s3.clear() == 2
    assert out.returncode == 0, out.stderr
    assert tables(s3, "proxy-503") == base["new"]

    # A 500 on every copy: retries run out, the build fails naming the
    # store's answer, every object stays whole, and once the store is back
    # the next command completes the step from the journal.
    cwd = fresh_case(s3, base, "proxy-500")
    s3.inject(is_copy("proxy-500"), status=500, count=10_000)
    out = wh(s3, cwd, "build", "--vars", NEW)
    hits = s3.clear()
    assert out.returncode == 1, out.stderr
    assert hits == 4, hits  # the first copy, tried 1 + 3 times
    assert "not published yet: publishing stopped after 0 of" in out.stderr, out.stderr
    assert "500" in out.stderr, out.stderr
    assert tables(s3, "proxy-500") == base["old"]
    assert "proxy-500/_wh/journal.json" in s3.keys(BUCKET, "proxy-500/_wh/")
    nxt = wh(s3, cwd, "run", "--select", "v_events", "--vars", NEW)
    assert nxt.returncode == 0, nxt.stderr
    assert "Completed the publishing of run" in nxt.stderr, nxt.stderr
    assert tables(s3, "proxy-500") == base["new"]
    assert leftovers(s3, "proxy-500") == []

    # A connection reset while a staged table uploads: retried, or the
    # model fails with the transport error; never a torn object.
    cwd = fresh_case(s3, base, "proxy-reset")
    s3.inject(is_staged_upload("proxy-reset"), reset=True, count=1)
    out = wh(s3, cwd, "build", "--vars", NEW)
    assert s3.clear() == 1
    reset_outcome = "retried" if out.returncode == 0 else "failed"
    if out.returncode == 0:
        assert tables(s3, "proxy-reset") == base["new"]
    else:
        assert out.returncode == 1 and "cannot upload" in out.stderr, out.stderr
        for rel, value in tables(s3, "proxy-reset").items():
            assert value in (base["old"][rel], base["new"][rel]), rel
        assert wh(s3, cwd, "build", "--vars", NEW).returncode == 0
        assert tables(s3, "proxy-reset") == base["new"]

    # A store slower than the client's timeout (AWS_TIMEOUT): the build
    # fails within the retries' bound instead of hanging.
    cwd = fresh_case(s3, base, "proxy-slow")
    s3.inject(is_copy("proxy-slow"), delay=3.0, count=10_000)
    env_extra = {"AWS_TIMEOUT": "1s"}
    env = s3.env(**env_extra)
    env.pop("FAILPOINTS", None)
    started = time.monotonic()
    out = subprocess.run([str(WH), "build", "--vars", NEW], cwd=cwd, env=env, capture_output=True, text=True,
                         timeout=120)
    took = time.monotonic() - started
    s3.clear()
    assert out.returncode == 1, out.stderr
    assert "not published yet" in out.stderr and "after 3 retries" in out.stderr, out.stderr
    for rel, value in tables(s3, "proxy-slow").items():
        assert value in (base["old"][rel], base["new"][rel]), rel
    nxt = wh(s3, cwd, "build", "--vars", NEW)
    assert nxt.returncode == 0, nxt.stderr
    assert tables(s3, "proxy-slow") == base["new"]
    print(f"S3 faults: 503 x2 retried; 500 failed after {hits} tries; reset {reset_outcome}; "
          f"slow store failed in {took:.1f} s")
