#!/usr/bin/python3
"""Trains and measures the seed Fashion-MNIST CNN in PyTorch and in loom, in one run.

Same data, same architecture and recipe (Keras defaults: Glorot-uniform
kernels, zero biases, Adam lr 1e-3, batch 32, shuffled every epoch), same
thread count. Each framework runs in its own child process, one after the
other (never at once):

  PyTorch  bench/pytorch_reference.py   (this interpreter: /usr/bin/python3,
                                         Debian's torch and numpy)
  loom     build/bench/loom_reference   (bench/loom_reference.cpp)

Both print one JSON line with the same keys. This script adds each child's
peak resident memory as the kernel saw it (os.wait4 on that child alone),
then prints a table, the ratios loom/pytorch, pass/fail against the targets,
and one JSON line (also written to --json-out). --markdown prints the table
as markdown, ready for docs/benchmarks.md.

  /usr/bin/python3 bench/compare_pytorch.py --threads 2              # the full run: 5 epochs, 60,000 images
  /usr/bin/python3 bench/compare_pytorch.py --epochs 1 --limit 6000  # a quick check

Targets (the speed work's goals):
  epoch time            loom <= 1/4 of PyTorch's seconds per epoch (median over epochs)
  inference             loom >= 8x PyTorch's images/s at batch 1,000
  single-image latency  loom <= 0.1 ms (median)
  training memory       loom peak RSS while training <= 150 MB
  accuracy              loom test accuracy >= 0.905 after 5 epochs on all
                        60,000 images (n/a for shorter or --limit runs)

It also turns a loom_bench JSON file into the per-layer markdown table of
docs/benchmarks.md (achieved GFLOP/s against the T-thread peak of the same
run, eigen/gemm/*, and against T times one thread of Eigen at the layer's own
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
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

TARGET_EPOCH_RATIO = 0.25
TARGET_INFERENCE_RATIO = 8.0
TARGET_LATENCY_MS = 0.1
TARGET_TRAIN_RSS_MB = 150.0
TARGET_ACCURACY = 0.905
FULL_TRAIN_IMAGES = 60000


def die(message):
    print(f"compare_pytorch: {message}", file=sys.stderr)
    sys.exit(2)


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


def run_child(name, cmd, threads):
    """Runs cmd with its stderr passed through; returns (its JSON line, seconds, peak RSS in MB of that child)."""
    print(f"==> {name}: {' '.join(shlex.quote(c) for c in cmd)}", file=sys.stderr, flush=True)
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    with tempfile.TemporaryFile(mode="w+") as out:
        t0 = time.perf_counter()
        try:
            proc = subprocess.Popen(cmd, stdout=out, stderr=None, env=env)
        except OSError as e:
            die(f"cannot start {name}: {e}")
        # wait4 on this child alone: ru_maxrss is its own peak, not the largest of all children so far.
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - t0
        out.seek(0)
        text = out.read()
    if proc.returncode != 0:
        sys.stderr.write(text)
        die(f"{name} failed with exit status {proc.returncode}")
    lines = [l for l in text.splitlines() if l.startswith("{")]
    if not lines:
        sys.stderr.write(text)
        die(f"{name} printed no JSON line")
    result = json.loads(lines[-1])
    return result, seconds, usage.ru_maxrss / 1024.0  # Linux: kilobytes


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


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def git_state():
    """The commit measured, '+dirty' when tracked files differ from it (None outside a git checkout)."""
    try:
        head = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True).stdout.strip()
        return head + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return None


def fmt(v, spec):
    return "-" if v is None else format(v, spec)


def verdict(ok):
    return "n/a" if ok is None else ("PASS" if ok else "FAIL")


def rows(report):
    """Table rows: (measure, pytorch, loom, loom/pytorch, target, verdict)."""
    p, l, r, t = report["pytorch"], report["loom"], report["ratios"], report["targets"]
    return [
        ("seconds per epoch (median)", fmt(p["epoch_seconds_median"], ".2f"), fmt(l["epoch_seconds_median"], ".2f"),
         fmt(r["epoch_time"], ".3f"), f"ratio <= {TARGET_EPOCH_RATIO}", verdict(t["epoch_time"]["pass"])),
        ("inference images/s (batch 1,000)", fmt(p["inference_images_per_second"], ",.0f"),
         fmt(l["inference_images_per_second"], ",.0f"), fmt(r["inference"], ".2f"),
         f"ratio >= {TARGET_INFERENCE_RATIO:g}", verdict(t["inference"]["pass"])),
        ("single-image latency ms (median)", fmt(p["latency_ms"], ".4f"), fmt(l["latency_ms"], ".4f"),
         fmt(r["latency"], ".3f"), f"loom <= {TARGET_LATENCY_MS} ms", verdict(t["latency"]["pass"])),
        ("peak RSS while training, MB", fmt(p["train_peak_rss_mb"], ".1f"), fmt(l["train_peak_rss_mb"], ".1f"),
         fmt(r["train_rss"], ".3f"), f"loom <= {TARGET_TRAIN_RSS_MB:g} MB", verdict(t["train_rss"]["pass"])),
        ("peak RSS whole run, MB", fmt(p["peak_rss_mb"], ".1f"), fmt(l["peak_rss_mb"], ".1f"),
         fmt(r["rss"], ".3f"), "", ""),
        (f"test accuracy after {report['epochs']} epochs", fmt(p["test_accuracy"], ".4f"),
         fmt(l["test_accuracy"], ".4f"), "", f"loom >= {TARGET_ACCURACY} (5 epochs, full data)",
         verdict(t["accuracy"]["pass"])),
    ]


HEADER = ("measure", "PyTorch", "loom", "loom/PyTorch", "target", "")


def text_table(report):
    table = [HEADER] + rows(report)
    widths = [max(len(row[i]) for row in table) for i in range(len(HEADER))]
    lines = []
    for k, row in enumerate(table):
        cells = [row[0].ljust(widths[0])] + [row[i].rjust(widths[i]) for i in (1, 2, 3)] + \
                [row[4].ljust(widths[4]), row[5]]
        lines.append("  ".join(cells).rstrip())
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown_table(report):
    lines = ["| " + " | ".join(HEADER[:5]) + " | pass |", "|---|---:|---:|---:|---|---|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows(report)]
    return "\n".join(lines)


# ---- the per-layer table from loom_bench's JSON --------------------------------

LAYERS = ("conv1", "pool1", "conv2", "pool2", "flatten", "dense1", "dense2")
TO_US = {"ns": 1e-3, "us": 1.0, "ms": 1e3, "s": 1e6}


def bench_results(path):
    """loom_bench JSON -> (context, {run name without /real_time: entry}); the median when repeated."""
    with open(path) as f:
        doc = json.load(f)
    medians, runs = {}, {}
    for b in doc.get("benchmarks", []):
        name = b.get("run_name", b["name"])
        name = name[: -len("/real_time")] if name.endswith("/real_time") else name
        if b.get("run_type") == "aggregate":
            if b.get("aggregate_name") == "median":
                medians[name] = b
        elif "error_occurred" not in b or not b["error_occurred"]:
            runs.setdefault(name, []).append(b)
    out = {}
    for name, entries in runs.items():
        entries.sort(key=lambda e: e["real_time"])
        out[name] = entries[len(entries) // 2]
    out.update(medians)
    return doc.get("context", {}), out


def micros(entry):
    return entry["real_time"] * TO_US[entry.get("time_unit", "ns")]


def layer_table(path):
    ctx, res = bench_results(path)
    # eigen/gemm/*: parallel_product over T threads (the peak); eigen/gemm1t/*: one thread.
    gemm = {n: e for n, e in res.items() if n.startswith(("eigen/gemm/", "eigen/gemm1t/"))}
    threaded = {n: e for n, e in gemm.items() if n.startswith("eigen/gemm/")}
    if not threaded:
        die(f"{path} has no eigen/gemm results; run loom_bench without a filter that excludes them")
    peak_name, peak = max(((n, e["GFLOP/s"]) for n, e in threaded.items()), key=lambda x: x[1])
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
             f"({peak_name}: parallel_product over {threads} thread(s), "
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
    for n in sorted(gemm):  # eigen/gemm/* (T threads), then eigen/gemm1t/* (one)
        lines.append(f"| {n} | {micros(gemm[n]) / 1000:,.2f} ms | - | {gemm[n]['GFLOP/s']:.1f} | "
                     f"{pct(gemm[n]['GFLOP/s'])} |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="\n".join(__doc__.splitlines()[2:]))
    ap.add_argument("--epochs", type=int, default=5, help="training epochs (default 5)")
    ap.add_argument("--threads", type=int, default=2, help="threads for both frameworks (default 2)")
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
    ap.add_argument("--json-out", help="also write the JSON result to this file")
    ap.add_argument("--markdown", action="store_true", help="print the table as markdown")
    ap.add_argument("--check", action="store_true", help="exit with status 1 when a target (not n/a) fails")
    ap.add_argument("--layer-table", metavar="BENCH_JSON",
                    help="print the per-layer markdown table of a loom_bench JSON file and exit (runs nothing)")
    a = ap.parse_args()
    if a.layer_table:
        print(layer_table(a.layer_table))
        return 0
    for name in ("epochs", "threads", "batch_size", "inference_repeats"):
        if getattr(a, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be at least 1")
    if a.limit < 0:
        ap.error("--limit must not be negative")
    if not os.access(a.loom_binary, os.X_OK):
        ap.error(f"{a.loom_binary} is not an executable; build it with\n"
                 f"  cmake -S {ROOT} -B build && cmake --build build --target loom_reference\n"
                 f"or pass --loom-binary PATH")

    data = data_dir(a.data)
    common = ["--data", data, "--epochs", str(a.epochs), "--batch-size", str(a.batch_size), "--limit", str(a.limit),
              "--threads", str(a.threads), "--seed", str(a.seed), "--inference-repeats", str(a.inference_repeats)]
    started = datetime.datetime.now(datetime.timezone.utc)
    load_before = list(os.getloadavg())  # how busy the (shared) machine was
    pt, pt_seconds, pt_rss = run_child("pytorch", [sys.executable, a.pytorch_script] + common, a.threads)
    lm, lm_seconds, lm_rss = run_child("loom", [a.loom_binary] + common, a.threads)
    p, l = summarise(pt, pt_rss), summarise(lm, lm_rss)

    def ratio(x, y):
        return None if x is None or not y else x / y

    ratios = {
        "epoch_time": ratio(l["epoch_seconds_median"], p["epoch_seconds_median"]),
        "inference": ratio(l["inference_images_per_second"], p["inference_images_per_second"]),
        "latency": ratio(l["latency_ms"], p["latency_ms"]),
        "train_rss": ratio(l["train_peak_rss_mb"], p["train_peak_rss_mb"]),
        "rss": ratio(l["peak_rss_mb"], p["peak_rss_mb"]),
    }
    full = a.epochs >= 5 and (l["train_images"] or 0) >= FULL_TRAIN_IMAGES
    targets = {
        "epoch_time": {"target": f"<= {TARGET_EPOCH_RATIO}", "value": ratios["epoch_time"],
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
        "kind": "loom_vs_pytorch",
        "date": started.isoformat(timespec="seconds"),
        "command": " ".join(shlex.quote(c) for c in [sys.executable] + sys.argv),
        "machine": {"cpu": cpu_model(), "cpus": os.cpu_count(), "loadavg_before": load_before,
                    "loadavg_after": list(os.getloadavg())},
        "loom_commit": git_state(),
        "threads": a.threads, "epochs": a.epochs, "limit": a.limit, "batch_size": a.batch_size, "seed": a.seed,
        "data": data,
        "pytorch": p, "loom": l, "ratios": ratios, "targets": targets,
        "child_seconds": {"pytorch": round(pt_seconds, 1), "loom": round(lm_seconds, 1)},
    }
    print()
    print(f"seed CNN, {l['train_images']} training images, {a.epochs} epoch(s), batch {a.batch_size}, "
          f"{a.threads} thread(s), {cpu_model()}; PyTorch {p['version']}, loom {l['version']} "
          f"(commit {report['loom_commit']})")
    print(markdown_table(report) if a.markdown else text_table(report))
    print(f"epoch seconds: PyTorch {p['epoch_seconds']}, loom {l['epoch_seconds']}")
    if not full:
        print("accuracy target: n/a (needs --epochs 5 or more on all 60,000 training images)")
    line = json.dumps(report, separators=(", ", ": "))
    print(line)
    if a.json_out:
        with open(a.json_out, "w") as f:
            f.write(line + "\n")
    if a.check and any(t["pass"] is False for t in targets.values()):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
