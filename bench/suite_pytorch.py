#!/usr/bin/python3
"""One model of the benchmark suite in PyTorch, on random data: the twin of loom_suite (bench/loom_suite.cpp).

Same flags, same JSON keys, same measurements (see loom_suite.cpp), plus
--layout: nchw (PyTorch's default) or channels_last (model and inputs in
torch.channels_last, which oneDNN's convolutions often prefer; image models
only). A training step is zero_grad, forward, cross_entropy, backward and
Adam (Keras defaults: lr 1e-3, eps 1e-7; the resnet: the recipe's SGD with
Nesterov momentum, as the recipe trains it); inference is eval mode, no_grad,
forward and softmax. --precision bf16 runs the forward passes (and the loss)
under PyTorch's bfloat16 autocast, its faster mode on CPUs with avx512_bf16.
The JSON also carries bench/torch_env.py's description
of the BLAS and oneDNN this process loaded. Run it with /usr/bin/python3.
"""
import argparse
import json
import os
import resource
import statistics
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import recipe_pytorch  # noqa: E402
import suite_models  # noqa: E402
import torch_env  # noqa: E402
from benchlib import PRECISIONS  # noqa: E402


def timed(fn, min_steps, min_seconds):
    """Seconds of each call of fn, repeated until min_steps calls and min_seconds in all."""
    s = []
    while len(s) < min_steps or sum(s) < min_seconds:
        t0 = time.perf_counter()
        fn()
        s.append(time.perf_counter() - t0)
    return s


def param_count(model):
    """Parameters as loom and Keras count them: BatchNorm's moving statistics included."""
    stats = sum(b.numel() for n, b in model.named_buffers() if n.endswith(("running_mean", "running_var")))
    return sum(p.numel() for p in model.parameters()) + stats


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kilobytes


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, choices=sorted(suite_models.MODELS))
    ap.add_argument("--layout", default="nchw", choices=("nchw", "channels_last"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--train-batch", type=int, default=0, help="0: the model's own")
    ap.add_argument("--batches", default="1,32,64,256")
    ap.add_argument("--min-steps", type=int, default=10)
    ap.add_argument("--min-seconds", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--precision", default="fp32", choices=PRECISIONS,
                    help="fp32, or bf16: forward passes under torch.autocast('cpu', torch.bfloat16)")
    a = ap.parse_args()
    if a.layout == "channels_last" and not suite_models.is_image_model(a.model):
        ap.error(f"--layout channels_last: {a.model} takes no images")
    if (why := torch_env.precision_error(a.precision)):
        ap.error(why)

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    spec = suite_models.MODELS[a.model]
    shape = spec["input"][::-1] if len(spec["input"]) == 3 else spec["input"]  # (C, H, W) or (features,)
    fmt = torch.channels_last if a.layout == "channels_last" else torch.contiguous_format

    def images(n):  # max(0, uniform(-1, 1)): about half zeros, as loom's synthetic images
        return torch.rand((n,) + tuple(shape)).mul_(2).sub_(1).clamp_(min=0).contiguous(memory_format=fmt)

    model = suite_models.build(a.model).to(memory_format=fmt)
    train_batch = a.train_batch or spec["train_batch"]
    x, y = images(train_batch), torch.randint(0, 10, (train_batch,))
    decay = []
    if spec.get("network") == "recipe":  # the recipe's optimizer (recipe_pytorch.py)
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True)
        decay = [p for p in model.parameters() if p.dim() > 1]
    else:
        opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-7)

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.no_grad():
            for p in decay:  # decoupled weight decay on the kernels, as the recipe's SGD
                p.mul_(1 - 0.01 * recipe_pytorch.WEIGHT_DECAY)
        with torch_env.arithmetic(a.precision):
            loss = F.cross_entropy(model(x).float(), y)
        loss.backward()
        opt.step()

    model.train()
    for _ in range(2):  # warm-up: allocations, Adam's moments, oneDNN's primitives
        step()
    steps = timed(step, a.min_steps, a.min_seconds)
    train_rss = peak_rss_mb()

    model.eval()
    inference = {}
    with torch.no_grad(), torch_env.arithmetic(a.precision):
        for b in (int(v) for v in a.batches.split(",")):
            xb = images(b)
            F.softmax(model(xb).float(), dim=1)  # warm-up
            s = statistics.median(timed(lambda: F.softmax(model(xb).float(), dim=1), a.min_steps, a.min_seconds))
            inference[str(b)] = {"images_per_second": round(b / s, 1), "ms": round(s * 1e3, 4)}
    print(json.dumps({
        "framework": "pytorch", "model": a.model, "layout": a.layout, "precision": a.precision, "threads": a.threads,
        "params": param_count(model), "train_batch": train_batch,
        "train_step_ms": round(statistics.median(steps) * 1e3, 4), "train_steps": len(steps),
        "train_peak_rss_mb": round(train_rss, 1), "inference": inference, "peak_rss_mb": round(peak_rss_mb(), 1),
        "torch": torch_env.describe(),
    }))


if __name__ == "__main__":
    main()
