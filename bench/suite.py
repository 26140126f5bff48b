#!/usr/bin/python3
"""The benchmark suite: loom against PyTorch on seven models, one command.

Models (bench/suite_models.hpp and its PyTorch twin bench/suite_models.py):
seed (the Fashion-MNIST CNN), vgg (3x3 same-padded stack on 32x32 RGB), photo
(96x96 RGB, 5x5 stride-2 first layer, 3x3 convs up to 128 channels), wide
(3x3 convs of 128-256 channels on 16x16 maps), odd (channel counts 24, 40,
72, 100), mlp (784-512-512-10) and resnet (the best recipe's BatchNorm
ResNet on 28x28 grey images, trained with SGD as the recipe trains it), on
random data.

  /usr/bin/python3 bench/suite.py              # the full suite, three rounds (about 8 minutes)
  /usr/bin/python3 bench/suite.py --quick      # a smoke run: batch 32 only, 2 repetitions, one round (1-2 minutes)
  /usr/bin/python3 bench/suite.py --models resnet --rounds 5   # five rounds, loom and PyTorch alternating
  /usr/bin/python3 bench/suite.py --chart suite.svg            # and the results as a picture (bench/suite_chart.py)

The children run one after the other, never at once, all with --threads:
  1. bench/torch_env.py: which BLAS and oneDNN PyTorch loads; against the
     reference BLAS the suite refuses to run (exit 2) unless
     --allow-reference-blas;
  2. build/bench/loom_bench on gemm/* (the GEMM peak of this run: the faster
     of a run before the conv layers and one after), peak/fma
     (the cores' FMA ceiling) and
     suite/<model>/conv*/* (every conv layer's forward and backward, GFLOP/s
     in the direct-equivalent convention of bench/flops.hpp);
  3. per model, build/bench/loom_suite, then bench/suite_pytorch.py in NCHW
     and in channels_last (image models): training step, inference at each
     batch size, peak RSS (each model in its own child, so the peak is that
     model's).
PyTorch's figure for a measure is the faster of its two layouts (both are
reported), in float32 as loom, or with --pytorch-precision bf16 under its
bfloat16 autocast (its faster mode on CPUs with avx512_bf16). With --rounds N (3), step 3 runs N times per model, and each ratio is
the median of the rounds' ratios: each round compares runs minutes apart at
most, so a host whose speed drifts over a suite run moves a ratio less than
it moves either side (the range over the rounds is printed beside it). The tables give loom/PyTorch ratios and each target of the speed
work with pass/fail; then one JSON line (also written to --json-out).

Targets (ratios within this run):
  training step     loom <= 0.75x PyTorch's time, every model
  inference         loom >= 1.5x PyTorch's images/s at batch 256, every model
                    (a table shows what that asks in GFLOP/s against the
                    cores' FMA peak, loom_bench peak/fma, in the same run; a
                    model that needs more than the peak is listed in the
                    JSON's beyond_fma_peak)
  seed latency      loom's single-image predict of the seed model <= 0.05 ms
  conv layers       forward and backward >= 70% of the run's GEMM peak, every
                    conv layer (the target is for non-Winograd layers; a
                    Winograd layer should exceed 100% in these direct-equivalent
                    FLOP/s, so it must pass too)
  seed memory       loom's peak RSS while training the seed model <= 100 MB
  memory            loom's peak RSS while training below PyTorch's (the lower
                    of its two layouts), every model
A target whose measurement was not made (--quick has no batch 256 and no
batch 1) is n/a. Exit status: 0, 1 with --check when a target failed, 2 on a
usage or child error or a refused BLAS.
"""
import argparse
import datetime
import os
import shlex
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as bl  # noqa: E402
import suite_chart  # noqa: E402
from suite_targets import (TARGET_CONV_PEAK, TARGET_INFERENCE_BATCH, TARGET_INFERENCE_RATIO,  # noqa: E402
                           TARGET_SEED_LATENCY_MS, TARGET_SEED_RSS_MB, TARGET_TRAIN_RATIO)

MODELS = ("seed", "vgg", "photo", "wide", "odd", "mlp", "resnet")
IMAGE_MODELS = ("seed", "vgg", "photo", "wide", "odd", "resnet")  # PyTorch runs these in both layouts



def parse_list(text, what, choices=None):
    items = [t for t in text.split(",") if t]
    if not items:
        bl.die(f"{what}: empty list")
    for t in items:
        if choices is not None and t not in choices:
            bl.die(f"{what}: unknown {t!r}; expected some of {', '.join(choices)}")
    return items


def run_layer_bench(a, models):
    """loom_bench on the GEMM peak and every conv layer of the models: (context, results).

    The GEMM cases run again after the conv layers and each keeps its faster
    run: the peak is the cores' ceiling, and one run of it slowed by the host
    (226 against 324 GFLOP/s in two runs an hour apart) made every layer look
    closer to it than it was."""
    gemm = "gemm/1024" if a.quick else "gemm/"

    def bench(flt):
        with tempfile.NamedTemporaryFile(suffix=".json") as out:
            cmd = [a.loom_bench, f"--threads={a.threads}", f"--benchmark_filter={flt}",
                   f"--benchmark_min_time={a.layer_min_time}", f"--benchmark_out={out.name}",
                   "--benchmark_out_format=json"]
            print(f"==> loom_bench: {' '.join(shlex.quote(c) for c in cmd)}", file=sys.stderr, flush=True)
            # Its console table goes to stderr, with the children's progress; the results come from the JSON file.
            if subprocess.run(cmd, stdout=sys.stderr, env=bl.thread_env(a.threads)).returncode != 0:
                bl.die("loom_bench failed")
            return bl.bench_results(out.name)

    ctx, res = bench(f"^({gemm}|peak/fma|suite/({'|'.join(models)})/conv[0-9]+/)")
    for name, e in bench(f"^({gemm})")[1].items():
        if name not in res or e["GFLOP/s"] > res[name]["GFLOP/s"]:
            res[name] = e
    return ctx, res


def measure_models(a, models):
    """Per model, a list of --rounds rounds: in each, the loom child's JSON and PyTorch's per layout, each
    with the child's wait4 peak RSS. A model's rounds run back to back, the frameworks alternating."""
    return {m: [measure_round(a, m, r) for r in range(a.rounds)] for m in models}


def measure_round(a, m, r):
    common = ["--threads", str(a.threads), "--batches", ",".join(map(str, a.batches)),
              "--min-steps", str(a.min_steps), "--min-seconds", str(a.min_seconds)]
    if a.train_batch:
        common += ["--train-batch", str(a.train_batch)]
    m_r = m if a.rounds == 1 else f"{m} (round {r + 1} of {a.rounds})"
    lm, _, lm_rss = bl.run_child(f"loom {m_r}", [a.loom_suite, "--model", m] + common, a.threads)
    lm["child_peak_rss_mb"] = round(lm_rss, 1)
    pt = {}
    for layout in bl.LAYOUTS if m in IMAGE_MODELS else ("nchw",):
        res, _, rss = bl.run_child(f"pytorch {m_r} {layout} {a.pytorch_precision}",
                                   [sys.executable, a.pytorch_script, "--model", m, "--layout", layout,
                                    "--precision", a.pytorch_precision] + common, a.threads, pytorch=True)
        res["child_peak_rss_mb"] = round(rss, 1)
        if res["params"] != lm["params"]:
            bl.die(f"{m}: loom has {lm['params']} parameters, PyTorch {res['params']}: not the same model")
        if res["torch"].get("blas") == "reference" and not a.allow_reference_blas:
            bl.die(f"{m}: the PyTorch child ran on the reference BLAS; refusing to compare")
        pt[layout] = res
    return {"loom": lm, "pytorch": pt}


def best(pt, key, lower_is_better):
    """(value, layout) of PyTorch's better layout for key(result); None when no layout has it."""
    vals = [(key(r), layout) for layout, r in pt.items() if key(r) is not None]
    if not vals:
        return None, None
    return (min if lower_is_better else max)(vals, key=lambda v: v[0])


def compare(a, lm, pt):
    """One round of one model: loom's measures against PyTorch's faster layout, with their ratios."""
    train_pt, train_layout = best(pt, lambda x: x["train_step_ms"], True)
    inf = {}
    for b in map(str, a.batches):
        v, layout = best(pt, lambda x: x["inference"].get(b, {}).get("images_per_second"), False)
        l = lm["inference"][b]["images_per_second"]
        inf[b] = {"loom": l, "pytorch": v, "pytorch_layout": layout, "ratio": bl.ratio(l, v),
                  "pytorch_by_layout": {k: x["inference"][b]["images_per_second"] for k, x in pt.items()},
                  "loom_ms": lm["inference"][b]["ms"]}
    rss_pt, rss_layout = best(pt, lambda x: x["train_peak_rss_mb"], True)
    return {
        "params": lm["params"], "train_batch": lm["train_batch"],
        "train_step_ms": {"loom": lm["train_step_ms"], "pytorch": train_pt, "pytorch_layout": train_layout,
                          "ratio": bl.ratio(lm["train_step_ms"], train_pt),
                          "pytorch_by_layout": {k: x["train_step_ms"] for k, x in pt.items()}},
        "inference": inf,
        "train_peak_rss_mb": {"loom": lm["train_peak_rss_mb"], "pytorch": rss_pt, "pytorch_layout": rss_layout,
                              "pytorch_by_layout": {k: x["train_peak_rss_mb"] for k, x in pt.items()}},
        "child_peak_rss_mb": {"loom": lm["child_peak_rss_mb"],
                              "pytorch_by_layout": {k: x["child_peak_rss_mb"] for k, x in pt.items()}},
    }


def summarise(a, results, layer_ctx, layer_res):
    """The per-model comparisons (the median of the rounds), the conv layers against the peak, and the targets."""
    models = {m: bl.median_of_rounds([compare(a, r["loom"], r["pytorch"]) for r in rounds])
              for m, rounds in results.items()}
    peak_name, peak = bl.gemm_peak(layer_res, "loom_bench's output")
    fma_peak = layer_res.get("peak/fma", {}).get("GFLOP/s")
    for m, v in models.items():
        # What the inference target asks of the hardware, in the FLOPs of flops.hpp.
        flops = results[m][0]["loom"].get("forward_flops_per_image")
        i = v["inference"].get(str(TARGET_INFERENCE_BATCH))
        if flops and i and i["pytorch"]:
            v["inference_256_gflops"] = {"flops_per_image": flops, "loom": i["loom"] * flops * 1e-9,
                                         "pytorch": i["pytorch"] * flops * 1e-9,
                                         "needed": TARGET_INFERENCE_RATIO * i["pytorch"] * flops * 1e-9,
                                         "fma_peak": fma_peak}
    layers = []
    for name, e in sorted(layer_res.items()):
        parts = name.split("/")
        if parts[0] == "suite" and len(parts) == 4 and e.get("GFLOP/s") is not None:
            layers.append({"model": parts[1], "layer": parts[2], "pass": parts[3], "gflops": e["GFLOP/s"],
                           "us": bl.micros(e), "fraction_of_peak": e["GFLOP/s"] / peak})
    # conv2 before conv10: by the layer's number, not its name's letters.
    layers.sort(key=lambda l: (MODELS.index(l["model"]), int(l["layer"][len("conv"):]), l["pass"] != "forward"))

    def every(values, ok):
        values = [v for v in values if v is not None]
        return all(ok(v) for v in values) if values else None

    b256 = str(TARGET_INFERENCE_BATCH)
    seed = models.get("seed")
    seed_latency = seed["inference"]["1"]["loom_ms"] if seed and "1" in seed["inference"] else None
    train_ratios = {m: v["train_step_ms"]["ratio"] for m, v in models.items()}
    inf_ratios = {m: v["inference"][b256]["ratio"] for m, v in models.items() if b256 in v["inference"]}
    rss = {m: (v["train_peak_rss_mb"]["loom"], v["train_peak_rss_mb"]["pytorch"]) for m, v in models.items()}
    targets = {
        "train_step": {"target": f"loom/PyTorch <= {TARGET_TRAIN_RATIO} on every model", "values": train_ratios,
                       "pass": every(train_ratios.values(), lambda v: v <= TARGET_TRAIN_RATIO)},
        "inference_256": {"target": f"loom/PyTorch images/s >= {TARGET_INFERENCE_RATIO} at batch {b256}, every model",
                          "values": inf_ratios,
                          "pass": every(inf_ratios.values(), lambda v: v >= TARGET_INFERENCE_RATIO),
                          # Models whose target needs more FLOP/s than the cores' FMA peak.
                          "beyond_fma_peak": sorted(m for m, v in models.items()
                                                    if fma_peak and v.get("inference_256_gflops", {}).get("needed", 0)
                                                    > fma_peak)},
        "seed_latency": {"target": f"seed single-image latency <= {TARGET_SEED_LATENCY_MS} ms", "values": seed_latency,
                         "pass": None if seed_latency is None else seed_latency <= TARGET_SEED_LATENCY_MS},
        "conv_layers": {"target": f"every conv layer forward and backward >= {TARGET_CONV_PEAK:.0%} of the GEMM peak",
                        "values": {f"{l['model']}/{l['layer']}/{l['pass']}": round(l["fraction_of_peak"], 3)
                                   for l in layers},
                        "pass": every([l["fraction_of_peak"] for l in layers], lambda v: v >= TARGET_CONV_PEAK)},
        "seed_memory": {"target": f"seed training peak RSS <= {TARGET_SEED_RSS_MB:g} MB",
                        "values": rss["seed"][0] if "seed" in rss else None,
                        "pass": rss["seed"][0] <= TARGET_SEED_RSS_MB if "seed" in rss else None},
        "memory": {"target": "training peak RSS below PyTorch's on every model",
                   "values": {m: list(v) for m, v in rss.items()},
                   "pass": every(rss.values(), lambda v: v[0] < v[1])},
    }
    return models, {"name": peak_name, "gflops": peak, "fma_gflops": fma_peak}, layers, targets


def layout_cells(by_layout, spec):
    return [bl.fmt(by_layout.get(k), spec) for k in bl.LAYOUTS]


def print_tables(models, peak, layers, targets, markdown):
    def show(title, header, rows, left=(0,)):
        print(f"\n{title}\n")
        print(bl.table(header, rows, markdown, left))

    def ratio_cell(r):
        """The ratio, with the range of its rounds when there were several."""
        return bl.with_range(r["ratio"], r.get("ratio_by_round"), ".2f")

    several = any("ratio_by_round" in v["train_step_ms"] for v in models.values())
    rounds = "; medians of the rounds (the ratio's range over them in brackets)" if several else ""
    rows = []
    for m, v in models.items():
        t = v["train_step_ms"]
        rows.append([m, str(v["train_batch"]), bl.fmt(t["loom"], ".2f")] + layout_cells(t["pytorch_by_layout"], ".2f") +
                    [ratio_cell(t), bl.verdict(None if t["ratio"] is None else t["ratio"] <= TARGET_TRAIN_RATIO)])
    show(f"Training step, ms (median); ratio = loom / PyTorch's faster layout; target <= {TARGET_TRAIN_RATIO}{rounds}",
         ["model", "batch", "loom", "PyTorch NCHW", "PyTorch channels_last", "loom/PyTorch", "target"], rows)

    rows = []
    for m, v in models.items():
        for b, i in v["inference"].items():
            target = bl.verdict(None if i["ratio"] is None else i["ratio"] >= TARGET_INFERENCE_RATIO) \
                if b == str(TARGET_INFERENCE_BATCH) else ""
            rows.append([m, b, bl.fmt(i["loom"], ",.0f")] + layout_cells(i["pytorch_by_layout"], ",.0f") +
                        [ratio_cell(i), bl.fmt(i["loom_ms"], ".3f"), target])
    show(f"Inference, images/s; ratio = loom / PyTorch's faster layout; target >= {TARGET_INFERENCE_RATIO} at batch "
         f"{TARGET_INFERENCE_BATCH}{rounds}",
         ["model", "batch", "loom", "PyTorch NCHW", "PyTorch channels_last", "loom/PyTorch", "loom ms per batch",
          "target"], rows)

    rows = [[m, f"{g['flops_per_image'] / 1e6:,.2f}", f"{g['loom']:.1f}", f"{g['pytorch']:.1f}", f"{g['needed']:.1f}",
             bl.fmt(g["fma_peak"], ".1f"),
             "yes" if g["fma_peak"] is None or g["needed"] <= g["fma_peak"] else "no: above the FMA peak"]
            for m, v in models.items() for g in [v.get("inference_256_gflops")] if g]
    if rows:
        show(f"What the inference target asks of the cores at batch {TARGET_INFERENCE_BATCH}: GFLOP/s of "
             "direct-equivalent products (bench/flops.hpp); FMA peak = peak/fma, the cores' ceiling in this run. "
             "A layer with a faster algorithm (Winograd) may exceed the peak in these units; a Dense layer cannot",
             ["model", "MFLOP per image", "loom", "PyTorch", f"needed for {TARGET_INFERENCE_RATIO}x", "FMA peak",
              "within the peak"], rows)

    rows = []
    for m, v in models.items():
        r = v["train_peak_rss_mb"]
        rows.append([m, bl.fmt(r["loom"], ".1f")] + layout_cells(r["pytorch_by_layout"], ".1f") +
                    [bl.fmt(bl.ratio(r["loom"], r["pytorch"]), ".2f"),
                     bl.verdict(None if r["pytorch"] is None else r["loom"] < r["pytorch"])])
    show("Peak RSS while training, MB (each model in its own child); target: below PyTorch's lower layout",
         ["model", "loom", "PyTorch NCHW", "PyTorch channels_last", "loom/PyTorch", "target"], rows)

    rows = [[f"{l['model']}/{l['layer']}", l["pass"], f"{l['us']:,.0f}", f"{l['gflops']:.1f}",
             f"{100 * l['fraction_of_peak']:.0f}%", bl.verdict(l["fraction_of_peak"] >= TARGET_CONV_PEAK)]
            for l in layers]
    show(f"Conv layers at the training batch (loom_bench); peak {peak['gflops']:.1f} GFLOP/s ({peak['name']}); "
         f"target >= {TARGET_CONV_PEAK:.0%}",
         ["layer", "pass", "µs", "GFLOP/s", "% of peak", "target"], rows, left=(0, 1))

    rows = [[k, t["target"], bl.verdict(t["pass"])] for k, t in targets.items()]
    show("Targets", ["target", "what", "result"], rows, left=(0, 1))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="\n".join(__doc__.splitlines()[2:]))
    bl.add_common_args(ap)
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: inference and training at batch 32 only, 2 repetitions, short layer runs")
    ap.add_argument("--models", default=",".join(MODELS), help=f"comma-separated (default {','.join(MODELS)})")
    ap.add_argument("--batches", help="inference batch sizes (default 1,32,64,256; --quick: 32)")
    ap.add_argument("--train-batch", type=int, default=0, help="training batch (default: each model's own; --quick: 32)")
    ap.add_argument("--min-steps", type=int, help="timed repetitions per measurement, at least (default 10; --quick: 2)")
    ap.add_argument("--min-seconds", type=float, help="and seconds per measurement, at least (default 1; --quick: 0)")
    ap.add_argument("--layer-min-time", type=float,
                    help="--benchmark_min_time of loom_bench's layer cases (default 0.5; --quick: 0.01)")
    ap.add_argument("--loom-suite", default=os.path.join(bl.ROOT, "build", "bench", "loom_suite"))
    ap.add_argument("--loom-bench", default=os.path.join(bl.ROOT, "build", "bench", "loom_bench"))
    ap.add_argument("--pytorch-script", default=os.path.join(bl.HERE, "suite_pytorch.py"))
    ap.add_argument("--pytorch-precision", default="fp32", choices=bl.PRECISIONS,
                    help="PyTorch's arithmetic: fp32 (loom's), or bf16 autocast (default fp32)")
    ap.add_argument("--rounds", type=int,
                    help="measure each model this many times, loom and PyTorch alternating, and compare the "
                         "medians of the rounds' ratios (default 3; --quick: 1)")
    ap.add_argument("--chart", help="also draw the results as SVG to this file (bench/suite_chart.py)")
    a = ap.parse_args()
    quick = a.quick
    a.batches = [int(b) for b in parse_list(a.batches or ("32" if quick else "1,32,64,256"), "--batches")]
    a.train_batch = a.train_batch or (32 if quick else 0)
    a.min_steps = a.min_steps if a.min_steps is not None else (2 if quick else 10)
    a.min_seconds = a.min_seconds if a.min_seconds is not None else (0.0 if quick else 1.0)
    a.layer_min_time = a.layer_min_time if a.layer_min_time is not None else (0.01 if quick else 0.5)
    # Three rounds by default: one round's ratio moved by up to a third on this
    # host (resnet's inference 1.17-2.11 in one run), a coin toss near a target.
    a.rounds = a.rounds if a.rounds is not None else (1 if quick else 3)
    models = parse_list(a.models, "--models", MODELS)
    if a.threads < 1 or a.min_steps < 1 or a.rounds < 1 or a.min_seconds < 0 or any(b < 1 for b in a.batches):
        ap.error("--threads, --min-steps, --rounds and the batch sizes must be at least 1, --min-seconds not negative")
    bl.check_output_files(json_out=a.json_out, chart=a.chart)
    bl.executable(a.loom_suite, "loom_suite")
    bl.executable(a.loom_bench, "loom_bench")

    started = datetime.datetime.now(datetime.timezone.utc)
    before = bl.host_state()
    torch_info = bl.probe_torch(a.threads)
    bl.check_blas(torch_info, a.allow_reference_blas)
    layer_ctx, layer_res = run_layer_bench(a, models)
    results = measure_models(a, models)
    summary, peak, layers, targets = summarise(a, results, layer_ctx, layer_res)
    after = bl.host_state()

    print(f"\nloom benchmark suite{' (--quick smoke run: not a measurement)' if quick else ''}, {a.threads} thread(s), "
          f"{bl.cpu_model()}, loom commit {bl.git_state()}")
    print("host: " + bl.host_summary(before, after))
    print(bl.blas_summary(torch_info))
    print("PyTorch's arithmetic: " + ("bfloat16 autocast (--pytorch-precision bf16)" if a.pytorch_precision == "bf16"
                                      else "float32, as loom's"))
    print_tables(summary, peak, layers, targets, a.markdown)
    print()
    report = dict(bl.report_head("loom_suite_vs_pytorch", started, before, after, a.threads), quick=quick,
                  batches=a.batches, min_steps=a.min_steps, min_seconds=a.min_seconds, pytorch=torch_info,
                  pytorch_precision=a.pytorch_precision,
                  gemm_peak=peak, models=summary, conv_layers=layers, targets=targets, raw=results)
    if a.chart:
        with open(a.chart, "w") as f:
            f.write(suite_chart.suite_svg(report))
    return bl.finish(report, a.json_out, a.check)


if __name__ == "__main__":
    sys.exit(main())
