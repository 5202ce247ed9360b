"""Runs a command several times and reports the median wall time, CPU time
and peak RSS of the process (from wait4's rusage, exact per run).

usage: measure.py RUNS -- COMMAND...
prints one JSON line: {"runs": N, "wall_s": median, "cpu_s": median, "peak_rss_mb": median, "all": [...]}
"""

import json
import os
import statistics
import subprocess
import sys
import time


def run_once(cmd):
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        sys.exit(f"command failed with exit code {code}: {' '.join(cmd)}")
    return {"wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime, "peak_rss_mb": usage.ru_maxrss / 1024}


def main():
    runs = int(sys.argv[1])
    cmd = sys.argv[sys.argv.index("--") + 1 :]
    results = [run_once(cmd) for _ in range(runs)]
    summary = {k: round(statistics.median(r[k] for r in results), 3) for k in results[0]}
    print(json.dumps({"runs": runs, **summary, "all": results}))


if __name__ == "__main__":
    main()
