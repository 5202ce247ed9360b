"""Wall time of `wh build` to an S3 warehouse (moto's S3 server on loopback,
the same one the tests use) as a ratio of the same build to a local folder,
measured in one run, interleaved, on the same generated data.

usage: .venv/bin/python bench/s3_vs_local.py [SCALE] [RUNS]
       (WH_BIN and WH_DATAGEN default to target/release/)
prints one JSON line with the medians and the ratio.
"""

import json
import os
import pathlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "readers"))
from s3server import S3Server  # noqa: E402

WH = os.environ.get("WH_BIN", str(ROOT / "target" / "release" / "wh"))
DATAGEN = os.environ.get("WH_DATAGEN", str(ROOT / "target" / "release" / "wh-datagen"))


def timed(cmd, cwd, env):
    start = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main():
    scale = sys.argv[1] if len(sys.argv) > 1 else "1"
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    work = pathlib.Path(tempfile.mkdtemp(prefix="wh-s3-bench-"))
    try:
        raw = work / "raw"
        subprocess.run([DATAGEN, "--scale", scale, "--out", str(raw)], check=True, capture_output=True)
        project = work / "project"
        project.mkdir()
        for item in ["wh_project.yml", "sources.yml"]:
            shutil.copy(ROOT / item, project / item)
        for item in ["models", "macros", "snapshots"]:
            shutil.copytree(ROOT / item, project / item)
        server = S3Server().start()
        env = server.env()
        vars_ = f"{{raw_root: '{raw}'}}"
        local_cmd = [WH, "build", "--quiet", "--vars", vars_]
        s3_cmd = [WH, "build", "--quiet", "--target", "prod", "--vars", vars_]
        # One warm-up of each (first S3 build creates the objects).
        timed(local_cmd, project, env)
        timed(s3_cmd, project, env)
        local, s3 = [], []
        for _ in range(runs):
            local.append(timed(local_cmd, project, env))
            s3.append(timed(s3_cmd, project, env))
        server.stop()
        result = {
            "scale": float(scale),
            "runs": runs,
            "local_wall_s": round(statistics.median(local), 3),
            "s3_wall_s": round(statistics.median(s3), 3),
            "ratio_s3_over_local": round(statistics.median(s3) / statistics.median(local), 2),
            "local_all": [round(x, 3) for x in local],
            "s3_all": [round(x, 3) for x in s3],
        }
        print(json.dumps(result))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
