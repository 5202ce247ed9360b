"""Runs commands several times and reports the median wall time, CPU time
and peak RSS of each process (from wait4's rusage, exact per run).

usage: measure.py RUNS [--interleave] [--stderr FILE] -- COMMAND... [-- COMMAND...]
prints one JSON line per command, in order:
{"runs": N, "wall_s": median, "cpu_s": median, "peak_rss_mb": median, "all": [...]}
With several commands, each round runs every command once (interleaved),
so that a noisy machine slows each alike.
"""

import json
import os
import statistics
import subprocess
import sys
import time


def run_once(cmd, stderr):
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=stderr)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        sys.exit(f"command failed with exit code {code}: {' '.join(cmd)}")
    return {"wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime, "peak_rss_mb": usage.ru_maxrss / 1024}


def main():
    args = sys.argv[1:]
    runs = int(args[0])
    head = args[1 : args.index("--")]
    stderr = None
    if "--stderr" in head:
        stderr = open(head[head.index("--stderr") + 1], "w")
    commands, current = [], None
    for a in args[args.index("--") :]:
        if a == "--":
            current = []
            commands.append(current)
        else:
            current.append(a)
    results = [[] for _ in commands]
    for _ in range(runs):
        for cmd, out in zip(commands, results):
            out.append(run_once(cmd, stderr))
    for out in results:
        summary = {k: round(statistics.median(r[k] for r in out), 3) for k in out[0]}
        print(json.dumps({"runs": runs, **summary, "all": out}))


if __name__ == "__main__":
    main()
