#!/usr/bin/env python3
"""2 ranks x 1 thread against 1 process x 2 threads, in one run.

For each model (default: the seed CNN and the suite's wide one), runs
build/bench/loom_distributed_bench alone with 2 threads, then under
`mpirun -np 2 --bind-to core` with 1 thread per rank, --repeats times in
turn, and prints each run's JSON line, then one summary line per model:

  {"model", "step_ms_1x2", "step_ms_2x1"  (medians over the repeats),
   "ratio"  (the median of each turn's 2x1 time over its 1x2 time: below 1 is
             faster distributed), "ratios" (every turn's), "allreduce_ms",
   "allreduce_share", "sharded_ms", "sharded_share", "collective_share"
   (medians)}

Taking turns, and medians of several, because this machine's speed drifts by
tens of percent within minutes (docs/distributed.md).

Timing: run it alone on the machine (flock /tmp/loom-bench.lock ... here).

  bench/distributed_scaling.py [--build build] [--models seed,wide] [--steps 60] [--repeats 1]
"""
import argparse
import json
import shutil
import statistics
import subprocess
import sys


def run(cmd):
    out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True).stdout
    line = [l for l in out.splitlines() if l.startswith("{")][-1]
    print(line, flush=True)
    return json.loads(line)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--build", default="build")
    p.add_argument("--models", default="seed,wide")
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--repeats", type=int, default=1)
    a = p.parse_args()
    bench = f"{a.build}/bench/loom_distributed_bench"
    mpirun = shutil.which("mpirun") or sys.exit("mpirun not found (apt-get install openmpi-bin)")
    for model in a.models.split(","):
        common = ["--model", model, "--steps", str(a.steps)]
        alone, ranks = [], []
        for _ in range(a.repeats):
            alone.append(run([bench, "--threads", "2"] + common))
            ranks.append(run([mpirun, "--allow-run-as-root", "-np", "2", "--bind-to", "core", bench, "--distributed",
                              "--threads", "1"] + common))
        ratios = [r["step_ms"] / x["step_ms"] for x, r in zip(alone, ranks)]
        # A key an older binary does not print comes out as null.
        med = lambda runs, key: round(statistics.median(r[key] for r in runs), 4) if key in runs[0] else None
        print(json.dumps({"model": model, "step_ms_1x2": med(alone, "step_ms"), "step_ms_2x1": med(ranks, "step_ms"),
                          "ratio": round(statistics.median(ratios), 3), "ratios": [round(r, 3) for r in ratios],
                          "allreduce_ms": med(ranks, "allreduce_ms"), "allreduce_share": med(ranks, "allreduce_share"),
                          "sharded_ms": med(ranks, "sharded_ms"), "sharded_share": med(ranks, "sharded_share"),
                          "collective_share": med(ranks, "collective_share")}), flush=True)


if __name__ == "__main__":
    main()
