#!/usr/bin/python3
"""Trains and measures the seed Fashion-MNIST CNN in PyTorch and in loom, in one run.

Same data, same architecture and recipe (Keras defaults: Glorot-uniform
kernels, zero biases, Adam lr 1e-3, batch 32, shuffled every epoch), same
thread count. Each framework runs in its own child process, one after the
other (never at once):

  PyTorch  bench/pytorch_reference.py   (this interpreter: /usr/bin/python3,
                                         Debian's torch and numpy), once in
                                         NCHW and once in channels_last
  loom     build/bench/loom_reference   (bench/loom_reference.cpp)

First a probe (bench/torch_env.py) prints which BLAS and oneDNN PyTorch
loads; against the reference BLAS the script refuses to compare (exit 2)
unless --allow-reference-blas. All children print one JSON line with the
same keys. This script adds each child's peak resident memory as the kernel
saw it (os.wait4 on that child alone), then prints a table (both PyTorch
layouts; loom/PyTorch is against the better layout of each measure),
pass/fail against the targets, and one JSON line (also written to
--json-out). --markdown prints the table as markdown, ready for
docs/benchmarks.md. The other models: bench/suite.py.

  /usr/bin/python3 bench/compare_pytorch.py --threads 2              # the full run: 5 epochs, 60,000 images
  /usr/bin/python3 bench/compare_pytorch.py --epochs 1 --limit 6000  # a quick check
  /usr/bin/python3 bench/compare_pytorch.py --epochs 1 --rounds 3    # three rounds, the frameworks alternating

With --rounds N the children run N times, PyTorch's layouts and loom in turn,
and each ratio is the median of the rounds' ratios, each taken between runs
minutes apart (its range over the rounds is printed beside it): this host's
speed drifts from hour to hour, and PyTorch's epoch swings more than loom's,
so one round's verdict can turn on when it ran. Every other number is the
median over the rounds; the JSON keeps each round's ratios (ratios_by_round).

Targets (the speed work's goals, against PyTorch on an optimised BLAS in its
better layout; bench/suite.py has the same for the other models):
  epoch time            loom <= 1/3 of PyTorch's seconds per epoch (median over epochs)
  inference             loom >= 1.5x PyTorch's images/s at batch 1,000
  single-image latency  loom <= 0.05 ms (median)
  training memory       loom peak RSS while training <= 100 MB
  accuracy              loom test accuracy >= 0.905 after 5 epochs on all
                        60,000 images (n/a for shorter or --limit runs)

It also turns a loom_bench JSON file into the per-layer markdown table of
docs/benchmarks.md (achieved GFLOP/s against the T-thread peak of the same
run, gemm/* (loom's product), and against T times one thread of Eigen at the layer's own
shapes, eigen/shape/*):

  build/bench/loom_bench --benchmark_out=bench.json --benchmark_out_format=json
  /usr/bin/python3 bench/compare_pytorch.py --layer-table bench.json

The machine may be shared and noisy: the ratios within one run are what
count, not absolute numbers from different runs. Exit status: 0 when both
children succeeded (1 with --check when a target failed), 2 on a usage or
child error.
"""
import argparse
import datetime
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as bl  # noqa: E402
from benchlib import die, fmt, verdict  # noqa: E402

HERE, ROOT = bl.HERE, bl.ROOT

TARGET_EPOCH_RATIO = 1 / 3
TARGET_INFERENCE_RATIO = 1.5
TARGET_LATENCY_MS = 0.05
TARGET_TRAIN_RSS_MB = 100.0
TARGET_ACCURACY = 0.905
FULL_TRAIN_IMAGES = 60000


def data_dir(given):
    """The folder both children read: --data, else loom's search order."""
    if given:
        return os.path.abspath(given)
    candidates = []
    env = os.environ.get("LOOM_DATA_DIR")
    if env:
        candidates += [env, os.path.join(env, "fashion-mnist")]
    candidates += [os.path.join(os.getcwd(), "data", "fashion-mnist"), os.path.join(ROOT, "data", "fashion-mnist"),
                   "/usr/share/datasets/fashion-mnist"]
    for d in candidates:
        if any(os.path.exists(os.path.join(d, n + ext))
               for n in ("train-images-idx3-ubyte", "train-images.idx3-ubyte") for ext in ("", ".gz")):
            return os.path.abspath(d)
    die("no Fashion-MNIST files found in " + ", ".join(candidates) +
        "; pass --data DIR (or apt-get install dataset-fashion-mnist, or run data/fetch.sh)")


def summarise(r, rss_mb):
    return {
        "epoch_seconds_median": statistics.median(r["epoch_seconds"]),
        "epoch_seconds": r["epoch_seconds"],
        "test_accuracy": r["test_accuracy"],
        "test_loss": r["test_loss"],
        "inference_images_per_second": r["inference_images_per_second"],
        "latency_ms": r["latency_ms"],
        "train_peak_rss_mb": r.get("train_peak_rss_mb"),
        "peak_rss_mb": round(rss_mb, 1),
        "train_images": r.get("train_images"),
        "version": r.get("version"),
    }


# PyTorch's figure for each measure: its better layout (lower or higher is better).
LOWER_IS_BETTER = ("epoch_seconds_median", "latency_ms", "train_peak_rss_mb", "peak_rss_mb")
HIGHER_IS_BETTER = ("inference_images_per_second",)


def best_of_layouts(by_layout):
    """One summary from PyTorch's per-layout summaries: each measure from its better layout (which one in
    "layout_of"); accuracy and loss from the layout with the faster epochs, the run the epoch time compares."""
    out, layout_of = {}, {}
    for key in LOWER_IS_BETTER + HIGHER_IS_BETTER:
        have = [(v[key], k) for k, v in by_layout.items() if v.get(key) is not None]
        if have:
            out[key], layout_of[key] = (min if key in LOWER_IS_BETTER else max)(have, key=lambda x: x[0])
    faster = layout_of.get("epoch_seconds_median", next(iter(by_layout)))
    for key in ("epoch_seconds", "test_accuracy", "test_loss", "train_images", "version"):
        out[key] = by_layout[faster].get(key)
    out["layout_of"] = layout_of
    return out


def round_ratios(p, l):
    """loom against PyTorch's better layout, measure by measure."""
    return {
        "epoch_time": bl.ratio(l["epoch_seconds_median"], p["epoch_seconds_median"]),
        "inference": bl.ratio(l["inference_images_per_second"], p["inference_images_per_second"]),
        "latency": bl.ratio(l["latency_ms"], p["latency_ms"]),
        "train_rss": bl.ratio(l["train_peak_rss_mb"], p["train_peak_rss_mb"]),
        "rss": bl.ratio(l["peak_rss_mb"], p["peak_rss_mb"]),
    }


def rows(report):
    """Table rows: (measure, pytorch per layout..., loom, loom/pytorch's better layout, target, verdict)."""
    l, r, t, by = report["loom"], report["ratios"], report["targets"], report["pytorch_layouts"]
    by_round = report.get("ratios_by_round", {})

    def line(measure, key, spec, ratio_key, target, verdict_key):
        ratio = bl.with_range(r[ratio_key], by_round.get(ratio_key), ".3f") if ratio_key else ""
        return ((measure,) + tuple(fmt(by[k].get(key), spec) if k in by else "-" for k in bl.LAYOUTS) +
                (fmt(l[key], spec), ratio, target, verdict(t[verdict_key]["pass"]) if verdict_key else ""))

    return [
        line("seconds per epoch (median)", "epoch_seconds_median", ".2f", "epoch_time",
             f"ratio <= {TARGET_EPOCH_RATIO:.3f}", "epoch_time"),
        line("inference images/s (batch 1,000)", "inference_images_per_second", ",.0f", "inference",
             f"ratio >= {TARGET_INFERENCE_RATIO:g}", "inference"),
        line("single-image latency ms (median)", "latency_ms", ".4f", "latency", f"loom <= {TARGET_LATENCY_MS} ms",
             "latency"),
        line("peak RSS while training, MB", "train_peak_rss_mb", ".1f", "train_rss",
             f"loom <= {TARGET_TRAIN_RSS_MB:g} MB", "train_rss"),
        line("peak RSS whole run, MB", "peak_rss_mb", ".1f", "rss", "", None),
        line(f"test accuracy after {report['epochs']} epochs", "test_accuracy", ".4f", None,
             f"loom >= {TARGET_ACCURACY} (5 epochs, full data)", "accuracy"),
    ]


HEADER = ("measure", "PyTorch NCHW", "PyTorch channels_last", "loom", "loom/PyTorch", "target", "")


# ---- the per-layer table from loom_bench's JSON --------------------------------

LAYERS = ("conv1", "pool1", "conv2", "pool2", "flatten", "dense1", "dense2")
micros = bl.micros


def layer_table(path):
    ctx, res = bl.bench_results(path)
    # gemm/*: loom's product over T threads (the peak); gemm1t/*: one thread; eigen/gemm1t/*: Eigen's, one thread.
    gemm = {n: e for n, e in res.items() if n.startswith(("gemm/", "gemm1t/", "eigen/gemm1t/"))}
    peak_name, peak = bl.gemm_peak(res, path)
    threads = int(ctx.get("loom_threads", 1))

    def shape_gflops(names):
        """GFLOP/s of one thread of Eigen doing these products one after the other."""
        if not names or not all(n in res for n in names):
            return None
        flops = sum(res[n]["GFLOP/s"] * micros(res[n]) * 1e-6 for n in names)  # GFLOP per iteration
        return flops / (sum(micros(res[n]) for n in names) * 1e-6)

    def pct(g):
        return "-" if g is None else f"{100.0 * g / peak:.0f}%"

    lines = [f"loom_bench, {ctx.get('loom_threads', '?')} thread(s), {ctx.get('date', '?')}, load average "
             f"{', '.join(f'{x:.2f}' for x in ctx.get('load_avg', []))}; peak {peak:.1f} GFLOP/s "
             f"({peak_name}: loom's product over {threads} thread(s), "
             f"{ctx.get('eigen_simd', '').split(',')[0]})",
             "",
             f"| layer | pass | µs per batch of 32 | images/s | GFLOP/s | % of peak "
             f"| Eigen on 1 thread at this shape, one whole-batch product per matrix, GFLOP/s "
             f"| layer / ({threads} × Eigen on 1 thread) |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for layer in LAYERS:
        for pass_ in ("forward", "backward"):
            e = res.get(f"layer/{layer}/{pass_}")
            if e is None:
                continue
            g = e.get("GFLOP/s")
            shapes = [f"eigen/shape/{layer}_forward"] if pass_ == "forward" else \
                     [n for n in (f"eigen/shape/{layer}_dW", f"eigen/shape/{layer}_dX") if n in res]
            alone = shape_gflops(shapes) if g is not None else None
            lines.append(f"| {layer} | {pass_} | {micros(e):,.0f} | {e.get('items_per_second', 0):,.0f} | "
                         f"{fmt(g, '.1f')} | {pct(g)} | {fmt(alone, '.1f')} | "
                         f"{'-' if g is None or not alone else f'{100.0 * g / (threads * alone):.0f}%'} |")
    lines += ["", "| benchmark | time | images/s | GFLOP/s | % of peak |", "|---|---:|---:|---:|---:|"]
    for name in ("train/step", "train/forward", "train/backward", "train/adam", "predict/batch:1",
                 "predict/batch:1000"):
        e = res.get(name)
        if e is None:
            continue
        us = micros(e)
        t = f"{us / 1000:,.2f} ms" if us >= 1000 else f"{us:,.1f} µs"
        g = e.get("GFLOP/s")
        lines.append(f"| {name} | {t} | {e.get('items_per_second', 0):,.0f} | {fmt(g, '.1f')} | {pct(g)} |")
    for n in sorted(gemm):  # eigen/gemm1t/*, gemm/* (T threads), gemm1t/* (one)
        lines.append(f"| {n} | {micros(gemm[n]) / 1000:,.2f} ms | - | {gemm[n]['GFLOP/s']:.1f} | "
                     f"{pct(gemm[n]['GFLOP/s'])} |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="\n".join(__doc__.splitlines()[2:]))
    ap.add_argument("--epochs", type=int, default=5, help="training epochs (default 5)")
    ap.add_argument("--limit", type=int, default=0, help="train on the first N training images only (0: all)")
    ap.add_argument("--data", help="folder with the Fashion-MNIST IDX files (default: loom's search order)")
    ap.add_argument("--batch-size", type=int, default=32, help="samples per batch (default 32)")
    ap.add_argument("--seed", type=int, default=7, help="seed of both runs (default 7, the example's default)")
    ap.add_argument("--inference-repeats", type=int, default=3,
                    help="timed passes over the test set at batch 1,000, median reported (default 3)")
    ap.add_argument("--loom-binary", default=os.path.join(ROOT, "build", "bench", "loom_reference"),
                    help="the loom_reference program (default: build/bench/loom_reference)")
    ap.add_argument("--pytorch-script", default=os.path.join(HERE, "pytorch_reference.py"),
                    help="the PyTorch reference (default: bench/pytorch_reference.py)")
    ap.add_argument("--layouts", default=",".join(bl.LAYOUTS),
                    help="PyTorch's layouts, each in its own run; the faster counts (default nchw,channels_last)")
    ap.add_argument("--rounds", type=int, default=1,
                    help="run the children N times, the frameworks alternating; ratios are the medians of the "
                         "rounds' ratios (default 1)")
    bl.add_common_args(ap)
    ap.add_argument("--layer-table", metavar="BENCH_JSON",
                    help="print the per-layer markdown table of a loom_bench JSON file and exit (runs nothing)")
    a = ap.parse_args()
    if a.layer_table:
        print(layer_table(a.layer_table))
        return 0
    for name in ("epochs", "threads", "batch_size", "inference_repeats", "rounds"):
        if getattr(a, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be at least 1")
    if a.limit < 0:
        ap.error("--limit must not be negative")
    bl.check_output_files(json_out=a.json_out)
    layouts = [x for x in a.layouts.split(",") if x]
    if not layouts or any(x not in bl.LAYOUTS for x in layouts):
        ap.error(f"--layouts: expected some of {','.join(bl.LAYOUTS)}, got {a.layouts!r}")
    bl.executable(a.loom_binary, "loom_reference")

    data = data_dir(a.data)
    common = ["--data", data, "--epochs", str(a.epochs), "--batch-size", str(a.batch_size), "--limit", str(a.limit),
              "--threads", str(a.threads), "--seed", str(a.seed), "--inference-repeats", str(a.inference_repeats)]
    started = datetime.datetime.now(datetime.timezone.utc)
    before = bl.host_state()  # how busy the (shared) machine was, and where its cores were
    torch_info = bl.probe_torch(a.threads)
    bl.check_blas(torch_info, a.allow_reference_blas)
    rounds = []
    for r in range(a.rounds):
        of = "" if a.rounds == 1 else f" (round {r + 1} of {a.rounds})"
        by_layout, child_seconds = {}, {}
        for layout in layouts:
            pt, child_seconds[f"pytorch_{layout}"], pt_rss = bl.run_child(
                f"pytorch {layout}{of}", [sys.executable, a.pytorch_script, "--layout", layout] + common, a.threads,
                pytorch=True)
            by_layout[layout] = summarise(pt, pt_rss)
        lm, child_seconds["loom"], lm_rss = bl.run_child(f"loom{of}", [a.loom_binary] + common, a.threads)
        l = summarise(lm, lm_rss)
        rounds.append({"pytorch_layouts": by_layout, "loom": l, "child_seconds": child_seconds,
                       "ratios": round_ratios(best_of_layouts(by_layout), l)})
    after = bl.host_state()
    merged = bl.median_of_rounds(rounds)  # each number the median of the rounds'; ratios the medians of theirs
    by_layout, l, ratios, child_seconds = (merged[k] for k in ("pytorch_layouts", "loom", "ratios", "child_seconds"))
    p = best_of_layouts(by_layout)
    full = a.epochs >= 5 and (l["train_images"] or 0) >= FULL_TRAIN_IMAGES
    targets = {
        "epoch_time": {"target": f"<= {TARGET_EPOCH_RATIO:.3f}", "value": ratios["epoch_time"],
                       "pass": ratios["epoch_time"] <= TARGET_EPOCH_RATIO},
        "inference": {"target": f">= {TARGET_INFERENCE_RATIO}", "value": ratios["inference"],
                      "pass": ratios["inference"] >= TARGET_INFERENCE_RATIO},
        "latency": {"target": f"<= {TARGET_LATENCY_MS} ms", "value": l["latency_ms"],
                    "pass": l["latency_ms"] <= TARGET_LATENCY_MS},
        "train_rss": {"target": f"<= {TARGET_TRAIN_RSS_MB} MB", "value": l["train_peak_rss_mb"],
                      "pass": l["train_peak_rss_mb"] <= TARGET_TRAIN_RSS_MB},
        "accuracy": {"target": f">= {TARGET_ACCURACY} after 5 epochs on all data", "value": l["test_accuracy"],
                     "pass": (l["test_accuracy"] >= TARGET_ACCURACY) if full else None},
    }
    report = {
        **bl.report_head("loom_vs_pytorch", started, before, after, a.threads),
        "epochs": a.epochs, "limit": a.limit, "batch_size": a.batch_size, "seed": a.seed,
        "data": data,
        "pytorch_env": torch_info, "pytorch": p, "pytorch_layouts": by_layout, "loom": l, "ratios": ratios,
        "targets": targets, "child_seconds": {k: round(v, 1) for k, v in child_seconds.items()},
        "rounds": a.rounds,
    }
    if a.rounds > 1:
        report["ratios_by_round"] = {k: [x["ratios"][k] for x in rounds] for k in ratios}
        report["epoch_seconds_by_round"] = [
            {"loom": x["loom"]["epoch_seconds_median"],
             **{f"pytorch_{k}": v["epoch_seconds_median"] for k, v in x["pytorch_layouts"].items()}} for x in rounds]
    print()
    print(f"seed CNN, {l['train_images']} training images, {a.epochs} epoch(s), batch {a.batch_size}, "
          f"{a.threads} thread(s), {bl.cpu_model()}; loom {l['version']} (commit {report['loom_commit']})")
    print(bl.blas_summary(torch_info))
    print("host: " + bl.host_summary(before, after))
    print(f"loom/PyTorch: against PyTorch's better layout for each measure "
          f"({', '.join(f'{k}: {v}' for k, v in p['layout_of'].items())})")
    print(bl.table(HEADER, rows(report), a.markdown, left=(0, 5, 6)))
    if a.rounds > 1:
        print("ratios are the medians of the rounds' ratios (their range in brackets); other numbers the medians "
              "of the rounds'")
        for i, x in enumerate(report["epoch_seconds_by_round"]):
            print(f"round {i + 1}: epoch seconds (median) " + ", ".join(f"{k} {v:.2f}" for k, v in x.items()) +
                  f"; epoch ratio {report['ratios_by_round']['epoch_time'][i]:.3f}")
    else:
        print(f"epoch seconds: PyTorch ({p['layout_of'].get('epoch_seconds_median')}) {p['epoch_seconds']}, "
              f"loom {l['epoch_seconds']}")
    if not full:
        print("accuracy target: n/a (needs --epochs 5 or more on all 60,000 training images)")
    return bl.finish(report, a.json_out, a.check)


if __name__ == "__main__":
    sys.exit(main())
