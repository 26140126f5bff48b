#!/usr/bin/python3
"""The seed Keras recipe in PyTorch: a benchmark reference for loom, never a dependency.

Same architecture, Keras initialisation (Glorot-uniform kernels, zero biases),
Adam with Keras defaults (lr 1e-3, betas 0.9/0.999, eps 1e-7), batch 32,
shuffled every epoch, in the layout --layout names: nchw (PyTorch's default)
or channels_last (model and every batch in torch.channels_last).
compare_pytorch.py runs both and compares loom with the faster. Prints one
JSON line:
  {"framework": "pytorch", "version": V, "threads": T, "epochs": E,
   "train_images": N, "epoch_seconds": [...], "test_accuracy": a,
   "test_loss": l, "inference_images_per_second": r, "latency_ms": m,
   "train_peak_rss_mb": t, "peak_rss_mb": p, "layout": ..., "torch": {...}}

bench/loom_reference.cpp is its loom twin: same flags, same keys, same
measurements:
  epoch_seconds                the training loop of each epoch (no evaluation)
  test_accuracy, test_loss     over the 10,000 test images
  inference_images_per_second  the test set in slices of 1,000, no_grad, eval
                               mode; median of --inference-repeats passes,
                               after one untimed slice as warm-up
  latency_ms                   median of 200 single-image forwards, after 20 untimed
  train_peak_rss_mb            ru_maxrss right after training
  peak_rss_mb                  ru_maxrss at the end
  torch                        bench/torch_env.py's description: the BLAS and
                               oneDNN this process loaded, its threads
Run it with /usr/bin/python3 (Debian's torch and numpy).
"""
import argparse, gzip, json, os, resource, struct, sys, time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_env  # noqa: E402


def read_idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    zero, dtype, rank = struct.unpack(">HBB", data[:4])
    dims = struct.unpack(">" + "I" * rank, data[4 : 4 + 4 * rank])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * rank).reshape(dims)


def find(dir_, stem):
    for name in (stem, stem.replace("-idx", ".idx")):
        for ext in ("", ".gz"):
            p = os.path.join(dir_, name + ext)
            if os.path.exists(p):
                return p
    sys.exit(f"pytorch_reference: {stem} not found in {dir_}")


def load(dir_, prefix):
    x = read_idx(find(dir_, f"{prefix}-images-idx3-ubyte")).astype(np.float32) / 255.0
    y = read_idx(find(dir_, f"{prefix}-labels-idx1-ubyte")).astype(np.int64)
    return torch.from_numpy(x).unsqueeze(1), torch.from_numpy(y)  # NCHW, as PyTorch wants


class SeedCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3)
        self.conv2 = nn.Conv2d(32, 64, 3)
        self.fc1 = nn.Linear(1600, 128)
        self.fc2 = nn.Linear(128, 10)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        # Flatten in Keras's (h, w, c) order is a permutation of PyTorch's (c, h, w): same model.
        x = torch.flatten(x, 1)
        return self.fc2(F.relu(self.fc1(x)))  # logits; softmax lives in the loss


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=os.environ.get("LOOM_DATA_DIR", "/usr/share/datasets/fashion-mnist"))
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--inference-repeats", type=int, default=3)
    ap.add_argument("--layout", default="nchw", choices=("nchw", "channels_last"))
    a = ap.parse_args()
    fmt = torch.channels_last if a.layout == "channels_last" else torch.contiguous_format

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    x_train, y_train = load(a.data, "train")
    x_test, y_test = load(a.data, "t10k")
    if a.limit:
        x_train, y_train = x_train[: a.limit], y_train[: a.limit]

    model = SeedCNN().to(memory_format=fmt)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-7)
    epoch_seconds = []
    for epoch in range(a.epochs):
        model.train()
        perm = torch.randperm(len(x_train))
        t0 = time.perf_counter()
        total, correct, loss_sum = 0, 0, 0.0
        for i in range(0, len(x_train), a.batch_size):
            idx = perm[i : i + a.batch_size]
            xb, yb = x_train[idx].contiguous(memory_format=fmt), y_train[idx]
            opt.zero_grad(set_to_none=True)
            out = model(xb)
            loss = F.cross_entropy(out, yb)
            loss.backward()
            opt.step()
            loss_sum += loss.item() * len(idx)
            correct += (out.argmax(1) == yb).sum().item()
            total += len(idx)
        epoch_seconds.append(time.perf_counter() - t0)
        print(f"Epoch {epoch + 1}/{a.epochs} - {epoch_seconds[-1]:.1f}s - loss: {loss_sum / total:.4f} "
              f"- accuracy: {correct / total:.4f}", file=sys.stderr, flush=True)
    train_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    model.eval()
    with torch.no_grad():
        slices = [x_test[i : i + 1000].contiguous(memory_format=fmt) for i in range(0, len(x_test), 1000)]
        model(slices[0])  # warm-up
        pass_seconds = []
        for _ in range(a.inference_repeats):
            t0 = time.perf_counter()
            logits = torch.cat([model(x) for x in slices])
            pass_seconds.append(time.perf_counter() - t0)
        infer_seconds = float(np.median(pass_seconds))
        test_loss = F.cross_entropy(logits, y_test).item()
        test_acc = (logits.argmax(1) == y_test).float().mean().item()
        one = x_test[:1].contiguous(memory_format=fmt)
        for _ in range(20):
            model(one)
        times = []
        for _ in range(200):
            t = time.perf_counter()
            model(one)
            times.append(time.perf_counter() - t)
    print(json.dumps({
        "framework": "pytorch", "version": torch.__version__, "threads": a.threads, "epochs": a.epochs,
        "train_images": len(x_train), "epoch_seconds": [round(s, 3) for s in epoch_seconds],
        "test_accuracy": round(test_acc, 4), "test_loss": round(test_loss, 4),
        "inference_images_per_second": round(len(x_test) / infer_seconds, 1),
        "latency_ms": round(float(np.median(times)) * 1000, 4),
        "train_peak_rss_mb": round(train_rss, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "layout": a.layout, "torch": torch_env.describe(),
    }))


if __name__ == "__main__":
    main()
