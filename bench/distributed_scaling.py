#!/usr/bin/env python3
"""2 ranks x 1 thread against 1 process x 2 threads, in one run.

For each model (default: the seed CNN and the suite's wide one), runs
build/bench/loom_distributed_bench alone with 2 threads, then under
`mpirun -np 2 --bind-to core` with 1 thread per rank, and prints each run's
JSON line, then one summary line per model:

  {"model", "step_ms_1x2", "step_ms_2x1", "ratio"  (2x1 time over 1x2 time:
   below 1 is faster distributed), "allreduce_ms", "allreduce_share",
   "collective_share"}

Timing: run it alone on the machine (flock /tmp/loom-bench.lock ... here).

  bench/distributed_scaling.py [--build build] [--models seed,wide] [--steps 60]
"""
import argparse
import json
import shutil
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
    a = p.parse_args()
    bench = f"{a.build}/bench/loom_distributed_bench"
    mpirun = shutil.which("mpirun") or sys.exit("mpirun not found (apt-get install openmpi-bin)")
    for model in a.models.split(","):
        common = ["--model", model, "--steps", str(a.steps)]
        alone = run([bench, "--threads", "2"] + common)
        ranks = run([mpirun, "--allow-run-as-root", "-np", "2", "--bind-to", "core", bench, "--distributed",
                     "--threads", "1"] + common)
        print(json.dumps({"model": model, "step_ms_1x2": alone["step_ms"], "step_ms_2x1": ranks["step_ms"],
                          "ratio": round(ranks["step_ms"] / alone["step_ms"], 3),
                          "allreduce_ms": ranks["allreduce_ms"], "allreduce_share": ranks["allreduce_share"],
                          "collective_share": ranks["collective_share"]}), flush=True)


if __name__ == "__main__":
    main()
