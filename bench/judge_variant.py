#!/usr/bin/python3
"""Judges a variant of the best recipe on held-out training images, by a rule fixed before the runs.

The recipe's variants are chosen without the test set (docs/best-recipe.md,
"Choosing on held-out training images"): each seed trains on all but the
last --hold-out training images and scores those. For every seed this runs
the recipe (the baseline: fashion_mnist_best with --baseline's flags, none
by default) and the variant (--variant's flags), --parallel runs at a time
on --threads threads each (two runs of 1 thread side by side on 2 cores by
default: their accuracies do not depend on the thread count or on what
else runs, their minutes do), and applies the rule:

  the variant is adopted if its median held-out accuracy with flip TTA
  over the seeds is higher than the baseline's, its plain median is not
  lower than the baseline's by more than --margin (one standard error of
  an accuracy near 0.94 on 10,000 images: 0.0024), and, with
  --max-time-ratio R, it trained in at most R times the baseline's
  seconds at every seed.

It stops as soon as no result still to come could make the variant
adopted (the runs still going are stopped, the seeds not begun are not
run), as the judgments in docs/best-recipe.md did by hand. Baseline runs of
an earlier report of this script (--baseline-runs: the same binary flags,
hold-out, epochs and limit) are taken instead of running them again.

  /usr/bin/python3 bench/judge_variant.py --seeds 10,11,12 --variant="--blocks 1,1,2" --max-time-ratio 1.5 --markdown
  /usr/bin/python3 bench/judge_variant.py --seeds 13,14,15 --variant="--max-lr 0.05" --baseline-runs judged.json
  /usr/bin/python3 bench/judge_variant.py --seeds 1,2,3 --variant="--width 16" --epochs 1 --limit 3000 --hold-out 1000   # a quick check

One JSON line on stdout (also written to --json-out): every run's JSON, the
medians, each condition and the verdict; a table on stderr (--markdown for
docs/best-recipe.md). Each run's own output goes to a log in --log-dir; a
line every minute says which epoch each running run has reached.
Exit status: 0 when the judgment finished (adopted or not), 2 on a usage or
child error.
"""
import argparse
import datetime
import json
import os
import shlex
import statistics
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as bl  # noqa: E402
from benchlib import die  # noqa: E402

ARMS = ("baseline", "variant")
# The keys of a run's JSON the rule reads (fashion_mnist_best --hold-out writes validation_*).
PLAIN, TTA = "validation_accuracy", "validation_accuracy_flip_tta"
EPOCH_LINE = re.compile(r"^Epoch (\d+/\d+)", re.MULTILINE)  # fashion_mnist_best --verbose 2's per-epoch lines
PROGRESS_EVERY = 60.0  # seconds between progress lines


# ---- the rule ----------------------------------------------------------------

def median_bounds(known, unknown):
    """The least and greatest median of `known` and `unknown` more values, each anywhere in [0, 1]."""
    if not known and not unknown:
        return None, None
    return statistics.median(known + [0.0] * unknown), statistics.median(known + [1.0] * unknown)


def judge(results, seeds, margin, max_time_ratio):
    """The rule on what has finished: results[arm][seed] is a run's JSON. Returns a dict with each
    condition ("holds", "fails" or "open") and the verdict: "adopted", "not adopted" (whatever is
    still to come), or "open"."""
    def known(arm, key):
        return [results[arm][s][key] for s in seeds if s in results[arm]]

    def missing(arm):
        return sum(1 for s in seeds if s not in results[arm])

    conditions = {}
    bounds = {arm: {key: median_bounds(known(arm, key), missing(arm)) for key in (PLAIN, TTA)} for arm in ARMS}
    v_lo, v_hi = bounds["variant"][TTA]
    b_lo, b_hi = bounds["baseline"][TTA]
    conditions["flip_tta_median_higher"] = "holds" if v_lo > b_hi else "fails" if v_hi <= b_lo else "open"
    v_lo, v_hi = bounds["variant"][PLAIN]
    b_lo, b_hi = bounds["baseline"][PLAIN]
    # Rounded to the accuracies' four digits, so a difference of exactly the margin is not lost to binary fractions.
    conditions["plain_median_within_margin"] = ("holds" if round(v_lo - (b_hi - margin), 6) >= 0 else
                                                "fails" if round(v_hi - (b_lo - margin), 6) < 0 else "open")
    if max_time_ratio:
        ratios = [results["variant"][s]["train_seconds"] / results["baseline"][s]["train_seconds"]
                  for s in seeds if s in results["variant"] and s in results["baseline"]]
        pending = any(s not in results["variant"] or s not in results["baseline"] for s in seeds)
        conditions["time_within_ratio"] = ("fails" if any(r > max_time_ratio for r in ratios) else
                                           "open" if pending else "holds")
    states = set(conditions.values())
    verdict = "not adopted" if "fails" in states else "adopted" if states == {"holds"} else "open"
    return {"conditions": conditions, "verdict": verdict}


def medians(results, seeds):
    """Each arm's medians over the seeds it has finished (None for an arm with none)."""
    out = {}
    for arm in ARMS:
        done = [results[arm][s] for s in seeds if s in results[arm]]
        out[arm] = {key: statistics.median(r[key] for r in done) if done else None for key in (PLAIN, TTA)}
    return out


# ---- the runs ----------------------------------------------------------------

class Run:
    """One fashion_mnist_best child, its output (the per-epoch lines and the JSON line) in a log of its own."""

    def __init__(self, arm, seed, cmd, threads, log_path):
        self.arm, self.seed, self.log_path = arm, seed, log_path
        print(f"==> {arm} seed {seed}: {' '.join(shlex.quote(c) for c in cmd)} (log: {log_path})",
              file=sys.stderr, flush=True)
        self.log = open(log_path, "w")
        try:
            self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, env=bl.thread_env(threads))
        except OSError as e:
            die(f"cannot start {cmd[0]}: {e}")

    def text(self, tail=None):
        with open(self.log_path) as f:
            if tail:
                f.seek(max(0, os.path.getsize(self.log_path) - tail))
            return f.read()

    def progress(self):
        """The last epoch the run has finished ("epoch 12/36"), or "starting"."""
        epochs = EPOCH_LINE.findall(self.text(tail=4096))
        return f"epoch {epochs[-1]}" if epochs else "starting"

    def result(self):
        """The run's last JSON line; dies when the child failed."""
        self.log.close()
        lines = [l for l in self.text().splitlines() if l.startswith("{")]
        if self.proc.returncode != 0 or not lines:
            die(f"{self.arm} seed {self.seed} failed with exit status {self.proc.returncode}; see {self.log_path}")
        return json.loads(lines[-1])

    def stop(self):
        self.proc.terminate()
        self.proc.wait()
        self.log.close()


def load_baseline(path, flags, common, seeds):
    """The baseline runs of an earlier report of this script, where they match these runs' flags."""
    try:
        with open(path) as f:
            earlier = json.loads(f.read().strip().splitlines()[-1])
        if earlier.get("kind") != "judge_variant":
            raise ValueError("its kind is not judge_variant")
        if earlier["baseline_flags"] != flags or earlier["common_flags"] != common:
            die(f"--baseline-runs: {path} ran the baseline as {earlier['baseline_flags'] + earlier['common_flags']}, "
                f"this judgment as {flags + common}")
        runs = {int(s): r for s, r in earlier["runs"]["baseline"].items()}
    except (OSError, ValueError, KeyError, IndexError, TypeError) as e:
        die(f"--baseline-runs: {path}: not a report of this script ({e})")
    return {s: r for s, r in runs.items() if s in seeds}


# ---- the report --------------------------------------------------------------

def fmt(v):
    return "" if v is None else f"{v:.4f}"


def print_table(results, seeds, med, markdown):
    header = ["seed", "baseline", "with flip TTA", "variant", "with flip TTA", "seconds (baseline / variant)"]
    rows = []
    for s in seeds:
        b, v = results["baseline"].get(s), results["variant"].get(s)
        rows.append([str(s), fmt(b and b[PLAIN]), fmt(b and b[TTA]), fmt(v and v[PLAIN]), fmt(v and v[TTA]),
                     " / ".join(f"{r['train_seconds']:.0f}" if r else "not run" for r in (b, v))])
    rows.append(["median (of the runs done)", fmt(med["baseline"][PLAIN]), fmt(med["baseline"][TTA]), fmt(med["variant"][PLAIN]),
                 fmt(med["variant"][TTA]), ""])
    print(bl.table(header, rows, markdown), file=sys.stderr)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", required=True, help="comma-separated seeds, e.g. 10,11,12 (seeds that chose nothing)")
    ap.add_argument("--variant", required=True, help='the variant\'s flags of fashion_mnist_best, e.g. "--blocks 1,1,2"')
    ap.add_argument("--baseline", default="", help="the baseline's flags (default none: the recipe)")
    ap.add_argument("--baseline-runs", metavar="REPORT", help="take baseline runs of these seeds from an earlier report")
    ap.add_argument("--hold-out", type=int, default=10000, help="held-out training images (default 10000)")
    ap.add_argument("--epochs", type=int, help="epochs (default: the recipe's)")
    ap.add_argument("--limit", type=int, help="train on the first N images only (a quick check)")
    ap.add_argument("--margin", type=float, default=0.0024,
                    help="how much lower the variant's plain median may be (default 0.0024)")
    ap.add_argument("--max-time-ratio", type=float, help="the variant's training seconds over the baseline's, at most")
    ap.add_argument("--threads", type=int, default=1, help="threads of each run (default 1)")
    ap.add_argument("--parallel", type=int, default=2, help="runs at a time (default 2)")
    ap.add_argument("--log-dir", default=".", help="where each run's output goes (default: here)")
    ap.add_argument("--binary", default=os.path.join(bl.ROOT, "build", "examples", "fashion_mnist_best"))
    ap.add_argument("--json-out", help="also write the JSON report to this file")
    ap.add_argument("--markdown", action="store_true", help="print the table as markdown")
    a = ap.parse_args()
    try:
        seeds = [int(s) for s in a.seeds.split(",") if s]
    except ValueError:
        die(f"--seeds: expected comma-separated integers, got {a.seeds!r}")
    if not seeds or len(set(seeds)) != len(seeds):
        die(f"--seeds: give distinct seeds, got {a.seeds!r}")
    for flag, value, least in (("--hold-out", a.hold_out, 1), ("--threads", a.threads, 1),
                               ("--parallel", a.parallel, 1), ("--epochs", a.epochs, 1), ("--limit", a.limit, 1)):
        if value is not None and value < least:
            die(f"{flag}: expected a whole number >= {least}, got {value}")
    if not 0 <= a.margin < 1:
        die(f"--margin: expected a number in [0, 1), got {a.margin}")
    if a.max_time_ratio is not None and a.max_time_ratio <= 0:
        die(f"--max-time-ratio: expected a positive number, got {a.max_time_ratio}")
    variant, baseline = shlex.split(a.variant), shlex.split(a.baseline)
    if variant == baseline:
        die("--variant: the same flags as the baseline; there is nothing to judge")
    if not os.path.isdir(a.log_dir):
        die(f"--log-dir {a.log_dir}: not a directory")
    bl.check_output_files(json_out=a.json_out)
    binary = bl.executable(a.binary, "fashion_mnist_best")

    common = ["--threads", str(a.threads), "--verbose", "2", "--hold-out", str(a.hold_out)]
    if a.epochs:
        common += ["--epochs", str(a.epochs)]
    if a.limit:
        common += ["--limit", str(a.limit)]
    results = {"baseline": load_baseline(a.baseline_runs, baseline, common, seeds) if a.baseline_runs else {},
               "variant": {}}
    queue = [(arm, s) for s in seeds for arm in ARMS if s not in results[arm]]
    flags = {"baseline": baseline, "variant": variant}

    started, before = datetime.datetime.now(), bl.host_state()
    running, judged = [], judge(results, seeds, a.margin, a.max_time_ratio)
    last_progress = time.perf_counter()
    while (queue or running) and judged["verdict"] != "not adopted":
        if running and time.perf_counter() - last_progress >= PROGRESS_EVERY:
            last_progress = time.perf_counter()
            print("==> " + "; ".join(f"{r.arm} seed {r.seed}: {r.progress()}" for r in running),
                  file=sys.stderr, flush=True)
        while queue and len(running) < a.parallel:
            arm, s = queue.pop(0)
            log = os.path.join(a.log_dir, f"judge-{arm}-seed{s}.log")
            running.append(Run(arm, s, [binary, "--seed", str(s), *common, *flags[arm]], a.threads, log))
        time.sleep(1)
        for run in [r for r in running if r.proc.poll() is not None]:
            running.remove(run)
            results[run.arm][run.seed] = out = run.result()
            print(f"==> {run.arm} seed {run.seed}: held-out {out[PLAIN]:.4f}, with flip TTA {out[TTA]:.4f}, "
                  f"{out['train_seconds']:.0f} s of training", file=sys.stderr, flush=True)
            judged = judge(results, seeds, a.margin, a.max_time_ratio)
    stopped = [f"{r.arm} seed {r.seed}" for r in running] + [f"{arm} seed {s}" for arm, s in queue]
    for run in running:
        run.stop()
    if stopped:
        print(f"==> no result still to come could adopt the variant; stopped or not run: {', '.join(stopped)}",
              file=sys.stderr, flush=True)

    med = medians(results, seeds)
    print_table(results, seeds, med, a.markdown)
    print(f"verdict: the variant is {judged['verdict']} ("
          + ", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in judged["conditions"].items()) + ")",
          file=sys.stderr, flush=True)
    report = bl.report_head("judge_variant", started, before, bl.host_state(), a.threads)
    report.update({"seeds": seeds, "baseline_flags": baseline, "variant_flags": variant, "common_flags": common,
                   "rule": {"margin": a.margin, "max_time_ratio": a.max_time_ratio},
                   "baseline_runs_from": a.baseline_runs,
                   "runs": {arm: {str(s): r for s, r in sorted(results[arm].items())} for arm in ARMS},
                   "stopped": stopped, "medians": med, **judged})
    return bl.finish(report, a.json_out, check=False)  # the verdict is the report's; no targets to check


if __name__ == "__main__":
    sys.exit(main())
