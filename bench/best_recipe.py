#!/usr/bin/python3
"""The best Fashion-MNIST recipe: its seeds, its ablation and PyTorch's time to the same accuracy, in one run.

Runs, one child at a time (never at once), each with the same thread count:

  loom     build/examples/fashion_mnist_best --seed S   for every --seeds S
           (and, with --ablation, once per variant that leaves one ingredient
           out, or adds back one the recipe left out, at the first seed)
  PyTorch  bench/recipe_pytorch.py (with --pytorch): the same recipe, in the
           layout --layout names (first a one-epoch probe of both layouts on
           --probe-images images picks the faster when --layout is "faster"),
           in float32 as loom, or with --pytorch-precision bf16 under
           PyTorch's bfloat16 autocast (its faster mode on CPUs with
           avx512_bf16: a stronger baseline than the same arithmetic)

Both print per-epoch test accuracy, scored outside the timed training loop
and never used to choose anything. The report: each loom run's final test
accuracy (and with flip test-time augmentation), minutes of training; the
median over seeds against the targets; PyTorch's training time until its
test accuracy first reaches loom's median (time to the same accuracy), and
the ratio. One JSON line on stdout (also written to --json-out), tables on
stderr (--markdown for docs/best-recipe.md).

  /usr/bin/python3 bench/best_recipe.py --seeds 1,2,3              # the targets: about 45 minutes
  /usr/bin/python3 bench/best_recipe.py --seeds 1 --pytorch        # one loom run and PyTorch's
  /usr/bin/python3 bench/best_recipe.py --pytorch --loom-runs best.json   # PyTorch against earlier loom runs
  /usr/bin/python3 bench/best_recipe.py --pytorch --pytorch-precision bf16 --loom-runs best.json   # ... in bfloat16
  /usr/bin/python3 bench/best_recipe.py --seeds 1 --ablation       # what each ingredient adds (one seed)
  /usr/bin/python3 bench/best_recipe.py --seeds 1 --epochs 1 --limit 6000   # a quick check

Targets (issue "a modern training recipe"): median test accuracy >= 0.940 at
the final epoch over 3 seeds, >= 0.945 with flip TTA, each run <= 15 minutes
of training on 2 threads; PyTorch >= 2x loom's time to the same accuracy
(n/a when PyTorch never reaches loom's median; the whole runs' time ratio
is reported beside it).
Exit status: 0 when every child succeeded (1 with --check when a target
failed), 2 on a usage or child error.
"""
import argparse
import datetime
import json
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as bl  # noqa: E402
from benchlib import die, fmt, verdict  # noqa: E402
from svg import Svg  # noqa: E402

# Each variant turns one ingredient off (flags of fashion_mnist_best), or
# (random erasing, label smoothing and dropout, which the recipe left out) on.
ABLATION = {
    "no augmentation": ["--augment", "none"],
    "with random erasing 0.25": ["--augment", "pad=2,flip,erasing=0.25"],
    "with label smoothing 0.1": ["--label-smoothing", "0.1"],
    "with dropout 0.2": ["--dropout", "0.2"],
    "strided 1x1 projections": ["--pooled-shortcut", "0"],
    "no weight decay": ["--weight-decay", "0"],
    "constant learning rate": ["--schedule", "constant"],
}


def precision_label(pytorch):
    """"bf16 " for a PyTorch run under bfloat16 autocast, "" for float32 (loom's arithmetic)."""
    return "bf16 " if pytorch.get("precision", "fp32") == "bf16" else ""


def time_to(accuracy, run):
    """Training seconds until the run's test accuracy first reaches `accuracy` (None: never)."""
    spent = 0.0
    for seconds, acc in zip(run["epoch_seconds"], run["epoch_test_accuracy"]):
        spent += seconds
        if acc >= accuracy:
            return spent
    return None


def curve_svg(series, target=0.94, y_range=(0.85, 0.95)):
    """Test accuracy against minutes of training, one line per run: [(label, colour, run)]."""
    w, h, left, right, top, bottom = 720, 420, 60, 170, 30, 50
    x_max = max(sum(r["epoch_seconds"]) for _, _, r in series) / 60 * 1.02
    lo, hi = y_range

    def px(minutes, acc):
        x = left + (w - left - right) * minutes / x_max
        y = top + (h - top - bottom) * (1 - (min(max(acc, lo), hi) - lo) / (hi - lo))
        return x, y

    svg = Svg(w, h, "Test accuracy after each epoch, against minutes of training (2 threads)")
    for k in range(6):
        acc = lo + (hi - lo) * k / 5
        _, y = px(0, acc)
        svg.line(left, y, w - right, y, "#ddd")
        svg.text(left - 6, y + 4, f"{acc:.2f}", anchor="end")
    step = 1 if x_max <= 12 else (2 if x_max <= 24 else 5)
    for m in range(0, int(x_max) + 1, step):
        x, _ = px(m, lo)
        svg.line(x, top, x, h - bottom, "#eee")
        svg.text(x, h - bottom + 16, m, anchor="middle")
    svg.text((left + w - right) / 2, h - 12, "minutes of training", anchor="middle")
    _, ty = px(0, target)
    svg.line(left, ty, w - right, ty, "#888", dash="5,4")
    svg.text(w - right + 6, ty + 4, f"target {target}", fill="#555")
    for i, (label, colour, r) in enumerate(series):
        spent, points = 0.0, []
        for seconds, acc in zip(r["epoch_seconds"], r["epoch_test_accuracy"]):
            spent += seconds
            points.append(px(spent / 60, acc))
        svg.polyline(points, colour)
        ly = max(top + 20, ty - 8) + 18 * i  # under the target's label, which sits where the line ends
        svg.line(w - right + 6, ly + 20, w - right + 26, ly + 20, colour, width=2)
        svg.text(w - right + 30, ly + 24, label)
    return svg.render()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    bl.add_common_args(ap)
    ap.add_argument("--seeds", help="comma-separated seeds of the loom runs (default 1,2,3)")
    ap.add_argument("--epochs", type=int, help="epochs (default: the recipe's)")
    ap.add_argument("--limit", type=int, help="train on the first N images only (a quick check; no targets)")
    ap.add_argument("--ablation", action="store_true",
                    help="also run each variant without one ingredient (and one with random erasing added back)")
    ap.add_argument("--pytorch", action="store_true", help="also run the recipe in PyTorch")
    ap.add_argument("--layout", default="faster", choices=("faster",) + bl.LAYOUTS)
    ap.add_argument("--pytorch-precision", default="fp32", choices=bl.PRECISIONS,
                    help="PyTorch's arithmetic: fp32 (loom's), or bf16 autocast (default fp32)")
    ap.add_argument("--probe-images", type=int, default=12800, help="images of the layout probe (default 12800)")
    ap.add_argument("--curve", help="also draw test accuracy against minutes of training, as SVG, to this file")
    ap.add_argument("--binary", default=os.path.join(bl.ROOT, "build", "examples", "fashion_mnist_best"))
    ap.add_argument("--loom-runs", metavar="REPORT",
                    help="take the loom runs (their seeds, --epochs and --limit too) from an earlier report of "
                         "this script (its JSON) instead of running them again, e.g. to add PyTorch's run")
    a = ap.parse_args()
    bl.check_output_files(json_out=a.json_out, curve=a.curve)
    earlier = None
    if a.loom_runs:
        # The earlier runs fixed the seeds, epochs and image count: PyTorch's run takes them from there.
        if a.seeds or a.epochs or a.limit:
            die("--loom-runs: the seeds, --epochs and --limit come from the earlier report; do not give them")
        try:
            with open(a.loom_runs) as f:
                earlier = json.loads(f.read().strip().splitlines()[-1])
            a.seeds = ",".join(str(s) for s in earlier["seeds"])
            a.epochs, a.limit = earlier.get("epochs"), earlier.get("limit")
        except (OSError, ValueError, KeyError, IndexError, TypeError) as e:
            die(f"--loom-runs: {a.loom_runs}: not a report of this script ({e})")
        if earlier.get("threads") != a.threads:
            die(f"--loom-runs: {a.loom_runs} ran on {earlier.get('threads')} threads, this run on {a.threads}")
    a.seeds = a.seeds or "1,2,3"
    try:
        seeds = [int(s) for s in a.seeds.split(",") if s]
    except ValueError:
        die(f"--seeds: expected comma-separated integers, got {a.seeds!r}")
    if not seeds:
        die("--seeds: give at least one seed")
    binary = bl.executable(a.binary, "fashion_mnist_best")

    started, before = datetime.datetime.now(), bl.host_state()
    common = ["--threads", str(a.threads)]
    if a.epochs:
        common += ["--epochs", str(a.epochs)]
    if a.limit:
        common += ["--limit", str(a.limit)]

    def loom(seed, extra=()):
        out, _, _ = bl.run_child(f"loom seed {seed}", [binary, "--seed", str(seed), "--verbose", "2", *common, *extra],
                                 a.threads)
        return out

    runs = earlier["loom"] if earlier else [loom(s) for s in seeds]
    ablation = {name: loom(seeds[0], flags) for name, flags in ABLATION.items()} if a.ablation else {}

    median_acc = statistics.median(r["test_accuracy"] for r in runs)
    median_tta = statistics.median(r["test_accuracy_flip_tta"] for r in runs)
    slowest_minutes = max(r["train_seconds"] for r in runs) / 60
    full = not a.limit and not a.epochs and len(seeds) >= 3
    report = bl.report_head("best_recipe", started, before, bl.host_state(), a.threads)
    report.update({"seeds": seeds, "epochs": a.epochs, "limit": a.limit, "loom": runs, "ablation": ablation, "median_test_accuracy": median_acc,
                   "median_test_accuracy_flip_tta": median_tta})
    if earlier:
        report["loom_runs_from"] = {"file": a.loom_runs, "date": earlier.get("date"),
                                    "loom_commit": earlier.get("loom_commit"), "machine": earlier.get("machine")}

    pytorch = None
    if a.pytorch:
        info = bl.probe_torch(a.threads)
        bl.check_blas(info, a.allow_reference_blas)
        script = os.path.join(bl.HERE, "recipe_pytorch.py")
        torch_common = ["--threads", str(a.threads), "--seed", str(seeds[0]), "--precision", a.pytorch_precision]
        layout = a.layout
        if layout == "faster":
            probe = {}
            for lay in bl.LAYOUTS:
                out, _, _ = bl.run_child(f"pytorch probe {lay}", [sys.executable, script, *torch_common, "--epochs", "1",
                                                                  "--limit", str(a.probe_images), "--layout", lay],
                                         a.threads, pytorch=True)
                probe[lay] = out["train_seconds"]
            layout = min(probe, key=probe.get)
            report["pytorch_layout_probe_seconds"] = probe
        # The loom runs' own epoch count (their JSON), so that both run one
        # schedule even when --epochs is left to the recipe's default.
        torch_args = torch_common + ["--layout", layout, "--epochs", str(a.epochs or runs[0]["epochs"])]
        if a.limit:
            torch_args += ["--limit", str(a.limit)]
        pytorch, _, _ = bl.run_child(f"pytorch {layout} {a.pytorch_precision}", [sys.executable, script, *torch_args],
                                     a.threads, pytorch=True)
        report["pytorch"] = pytorch

    loom_time = statistics.median(time_to(median_acc, r) or r["train_seconds"] for r in runs)
    torch_time = time_to(median_acc, pytorch) if pytorch else None
    speedup = bl.ratio(torch_time, loom_time)
    report["targets"] = {
        "median_accuracy": {"value": median_acc, "target": 0.940, "pass": median_acc >= 0.940 if full else None},
        "median_accuracy_flip_tta": {"value": median_tta, "target": 0.945, "pass": median_tta >= 0.945 if full else None},
        "minutes": {"value": slowest_minutes, "target": 15.0, "pass": slowest_minutes <= 15.0 if full else None},
        # PyTorch never reaching loom's median in the same recipe leaves the
        # ratio unmeasured (n/a), not passed: a seed's luck is not speed. The
        # whole runs' time ratio is reported beside it.
        "pytorch_time_to_accuracy": {"value": speedup, "target": 2.0,
                                     "pass": (None if not pytorch or not full or torch_time is None else speedup >= 2.0)},
    }
    if pytorch:
        report["pytorch_whole_run_time_ratio"] = bl.ratio(
            pytorch["train_seconds"], statistics.median(r["train_seconds"] for r in runs))

    if a.curve:
        colours = ["#1f77b4", "#2ca02c", "#17becf", "#9467bd"]
        series = [(f"loom seed {s}", colours[i % len(colours)], r) for i, (s, r) in enumerate(zip(seeds, runs))]
        if pytorch:
            series.append((f"PyTorch {precision_label(pytorch)}seed {seeds[0]}", "#d62728", pytorch))
        with open(a.curve, "w") as f:
            f.write(curve_svg(series))

    rows = [[f"loom seed {s}", fmt(r["test_accuracy"], ".4f"), fmt(r["test_accuracy_flip_tta"], ".4f"),
             fmt(r["train_seconds"] / 60, ".1f")] for s, r in zip(seeds, runs)]
    rows += [[f"loom seed {seeds[0]}, {name}", fmt(r["test_accuracy"], ".4f"), fmt(r["test_accuracy_flip_tta"], ".4f"),
              fmt(r["train_seconds"] / 60, ".1f")] for name, r in ablation.items()]
    if pytorch:
        rows.append([f"PyTorch {pytorch['layout']} {precision_label(pytorch)}seed {seeds[0]}", fmt(pytorch["test_accuracy"], ".4f"),
                     fmt(pytorch["test_accuracy_flip_tta"], ".4f"), fmt(pytorch["train_seconds"] / 60, ".1f")])
    print(bl.table(["run", "test accuracy", "with flip TTA", "minutes"], rows, a.markdown), file=sys.stderr)
    print(file=sys.stderr)
    target_rows = [[name, fmt(t["value"], ".4f") if t["value"] is not None else "-", str(t["target"]),
                    verdict(t["pass"])] for name, t in report["targets"].items()]
    if pytorch:
        target_rows.append(["(PyTorch seconds to loom's median accuracy)", fmt(torch_time, ".0f"), "", ""])
        target_rows.append(["(loom seconds to its median accuracy)", fmt(loom_time, ".0f"), "", ""])
        target_rows.append(["(PyTorch's whole run over loom's median run, time)",
                            fmt(report["pytorch_whole_run_time_ratio"], ".2f"), "", ""])
    print(bl.table(["target", "measured", "target", "verdict"], target_rows, a.markdown), file=sys.stderr)
    return bl.finish(report, a.json_out, a.check)


if __name__ == "__main__":
    sys.exit(main())
