#!/usr/bin/python3
"""loom's best Fashion-MNIST recipe in PyTorch: a benchmark reference for loom, never a dependency.

The network and training of include/loom/models/fashion_mnist_best.hpp, as
close as PyTorch allows: the small BatchNorm ResNet (stem conv 3x3, no max
pool, three basic blocks of w, 2w and 4w filters at strides 2, 2, 2, global
average pooling, dropout, dense 10; --blocks, --strides, --stem-pool,
--zero-init-residual, --pooled-shortcut and --pool-downsample as fashion_mnist_best's
flags), Keras's
initialisation (Glorot-uniform kernels, zero biases) and BatchNorm settings
(momentum 0.99, eps 1e-3), SGD with Nesterov momentum and decoupled weight decay
on the kernels only, a one-cycle learning rate (cosine up, cosine down), no
label smoothing (--label-smoothing X for some), and on-the-fly augmentation
(random crop of the zero-padded image, horizontal flip; random erasing with
--erase P, off as in the recipe),
all in the layout --layout names, in float32 or (--precision bf16) under
PyTorch's bfloat16 autocast: convolutions and products in bfloat16 through
oneDNN on CPUs that have it (avx512_bf16), weights and updates in float32.

Prints per-epoch progress on stderr and one JSON line on stdout:
  {"framework": "pytorch", "epochs": E, "epoch_seconds": [...],
   "epoch_test_accuracy": [...], "test_accuracy": a, "test_accuracy_flip_tta": b,
   "test_loss": l, "train_seconds": s, "threads": T, "layout": ..., "precision": ..., "torch": {...}}
epoch_seconds time the training loop only; the test set is scored after each
epoch outside the timed part (to find when a given accuracy is reached), and
never used to choose anything. Run it with /usr/bin/python3 (Debian's torch).
"""
import argparse, json, math, os, sys, time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_env  # noqa: E402
from benchlib import PRECISIONS  # noqa: E402
from pytorch_reference import load  # noqa: E402

# The recipe's network and weight decay as models::BestRecipe defines them; the suite's
# PyTorch resnet (suite_models.py, suite_pytorch.py) takes them from here too.
WIDTH = 32
DROPOUT = 0.0  # 0.2 until 2026-12-06 (docs/best-recipe.md)
WEIGHT_DECAY = 2.5e-3  # decoupled, kernels only; 5e-3 until 2026-12-06
POOL_DOWNSAMPLE = False  # a strided stage max-pools, then runs at stride 1 (loom's pool_downsample)


def bn(c):
    return nn.BatchNorm2d(c, momentum=0.01, eps=1e-3)  # Keras's momentum 0.99 is PyTorch's 0.01


class Block(nn.Module):
    def __init__(self, cin, cout, stride, zero_init, pooled_shortcut=False):
        super().__init__()
        self.c1, self.b1 = nn.Conv2d(cin, cout, 3, stride, 1), bn(cout)
        self.c2, self.b2 = nn.Conv2d(cout, cout, 3, 1, 1), bn(cout)
        if zero_init:
            nn.init.zeros_(self.b2.weight)  # the branch starts at zero (loom's zero_init_residual)
        self.proj = None
        if stride != 1 and pooled_shortcut:  # loom's AveragePooling2D, same padding: ceil, pads not counted
            self.proj = nn.Sequential(nn.AvgPool2d(stride, ceil_mode=True, count_include_pad=False),
                                      nn.Conv2d(cin, cout, 1), bn(cout))
        elif stride != 1 or cin != cout:
            self.proj = nn.Sequential(nn.Conv2d(cin, cout, 1, stride), bn(cout))

    def forward(self, x):
        y = self.b2(self.c2(F.relu(self.b1(self.c1(x)))))
        return F.relu(y + (self.proj(x) if self.proj is not None else x))


class SmallResNet(nn.Module):
    def __init__(self, width, dropout, blocks=(1, 1, 1), zero_init=False, strides=(2, 2, 2), stem_pool=False,
                 pooled_shortcut=True, pool_downsample=POOL_DOWNSAMPLE):
        super().__init__()
        w = width
        self.stem, self.bn0 = nn.Conv2d(1, w, 3, 1, 1), bn(w)
        self.stem_pool = stem_pool
        stages, cin = [], w
        for cout, stride, count in zip((w, 2 * w, 4 * w), strides, blocks):
            pool_first = pool_downsample and stride > 1
            if pool_first:  # loom's MaxPool2D, same padding: ceil, pads never the maximum
                stages.append(nn.MaxPool2d(stride, ceil_mode=True))
            for b in range(count):  # only a stage's first block strides
                block_stride = stride if b == 0 and not pool_first else 1
                stages.append(Block(cin, cout, block_stride, zero_init, pooled_shortcut))
                cin = cout
        self.blocks = nn.Sequential(*stages)
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(4 * w, 10)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x):
        x = F.relu(self.bn0(self.stem(x)))
        if self.stem_pool:
            x = F.max_pool2d(x, 2)
        x = self.blocks(x)
        return self.fc(self.drop(x.mean((2, 3))))


def augment(x, pad, erase_p, gen):
    """Random crop of the zero-padded batch, horizontal flip, random erasing (torchvision's defaults)."""
    n, _, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
    out = torch.stack([padded[i, :, y : y + h, x : x + w] for i, (y, x) in enumerate(zip(dy.tolist(), dx.tolist()))])
    flip = torch.rand(n, generator=gen) < 0.5
    out = torch.where(flip[:, None, None, None], out.flip(3), out)
    for i in torch.nonzero(torch.rand(n, generator=gen) < erase_p).flatten().tolist():
        for _ in range(10):  # torchvision's RandomErasing: scale (0.02, 0.33), ratio (0.3, 3.3), value 0
            area = h * w * (0.02 + 0.31 * torch.rand(1, generator=gen).item())
            ratio = math.exp(math.log(0.3) + (math.log(3.3) - math.log(0.3)) * torch.rand(1, generator=gen).item())
            eh, ew = int(round(math.sqrt(area * ratio))), int(round(math.sqrt(area / ratio)))
            if eh < h and ew < w:
                y0 = torch.randint(0, h - eh + 1, (1,), generator=gen).item()
                x0 = torch.randint(0, w - ew + 1, (1,), generator=gen).item()
                out[i, :, y0 : y0 + eh, x0 : x0 + ew] = 0
                break
    return out


def one_cycle(step, total, max_lr, pct_start=0.25, div=25.0, final_div=1e4):
    """loom's OneCycle (PyTorch's OneCycleLR, cos annealing, two phases): up from max_lr / div, down to that / final_div."""
    initial, final = max_lr / div, max_lr / div / final_div
    e1, e2 = pct_start * total - 1, total - 1

    def anneal(a, b, p):
        return b + (a - b) / 2 * (1 + math.cos(math.pi * p))

    if step <= e1:
        return anneal(initial, max_lr, step / e1 if e1 > 0 else 1.0)
    return anneal(max_lr, final, (min(step, e2) - e1) / (e2 - e1) if e2 > e1 else 1.0)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=os.environ.get("LOOM_DATA_DIR", "/usr/share/datasets/fashion-mnist"))
    ap.add_argument("--epochs", type=int, default=36, help="default: the recipe's (models/fashion_mnist_best.hpp)")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--width", type=int, default=WIDTH)
    ap.add_argument("--max-lr", type=float, default=0.1)
    ap.add_argument("--weight-decay", type=float, default=WEIGHT_DECAY)
    ap.add_argument("--label-smoothing", type=float, default=0.0)
    ap.add_argument("--dropout", type=float, default=DROPOUT)
    ap.add_argument("--blocks", default="1,1,1", help="basic blocks per stage, as fashion_mnist_best's --blocks")
    ap.add_argument("--zero-init-residual", type=int, choices=(0, 1), default=0)
    ap.add_argument("--strides", default="2,2,2", help="strides of the stages' first blocks, as fashion_mnist_best's")
    ap.add_argument("--stem-pool", type=int, choices=(0, 1), default=0)
    ap.add_argument("--pooled-shortcut", type=int, choices=(0, 1), default=1)
    ap.add_argument("--pool-downsample", type=int, choices=(0, 1), default=int(POOL_DOWNSAMPLE))
    ap.add_argument("--pad", type=int, default=2)
    ap.add_argument("--erase", type=float, default=0.0)
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--layout", default="channels_last", choices=("nchw", "channels_last"))
    ap.add_argument("--precision", default="fp32", choices=PRECISIONS,
                    help="fp32, or bf16: forward and loss under torch.autocast('cpu', torch.bfloat16)")
    a = ap.parse_args()
    def three_ints(flag, text):
        try:
            v = tuple(int(b) for b in text.split(","))
        except ValueError:
            v = ()
        if len(v) != 3 or min(v) < 1:
            ap.error(f"{flag}: expected 3 comma-separated whole numbers >= 1, got {text!r}")
        return v

    blocks, strides = three_ints("--blocks", a.blocks), three_ints("--strides", a.strides)
    fmt = torch.channels_last if a.layout == "channels_last" else torch.contiguous_format
    if (why := torch_env.precision_error(a.precision)):
        ap.error(why)

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    gen = torch.Generator().manual_seed(a.seed)
    x_train, y_train = load(a.data, "train")
    x_test, y_test = load(a.data, "t10k")
    if a.limit:
        x_train, y_train = x_train[: a.limit], y_train[: a.limit]

    model = SmallResNet(a.width, a.dropout, blocks, a.zero_init_residual == 1, strides,
                        a.stem_pool == 1, a.pooled_shortcut == 1, a.pool_downsample == 1).to(memory_format=fmt)
    decay = [p for n, p in model.named_parameters() if p.dim() > 1]  # kernels; not biases or BatchNorm
    # Decoupled weight decay as loom's (and Keras's) SGD applies it: w -= lr * wd * w before the
    # update, kernels only; PyTorch's own weight_decay would be an L2 term that momentum amplifies.
    opt = torch.optim.SGD(model.parameters(), lr=a.max_lr, momentum=0.9, nesterov=True)
    steps_per_epoch = (len(x_train) + a.batch_size - 1) // a.batch_size
    total = a.epochs * steps_per_epoch

    def score(flip_tta=False):
        model.eval()
        with torch.no_grad():
            probs = []
            for i in range(0, len(x_test), 1000):
                xb = x_test[i : i + 1000].contiguous(memory_format=fmt)
                with torch_env.arithmetic(a.precision):
                    p = F.softmax(model(xb).float(), 1)
                    if flip_tta:
                        p = (p + F.softmax(model(xb.flip(3)).float(), 1)) / 2
                probs.append(p)
            p = torch.cat(probs)
        return (p.argmax(1) == y_test).float().mean().item(), F.nll_loss(torch.log(p.clamp_min(1e-7)), y_test).item()

    epoch_seconds, epoch_acc, step = [], [], 0
    for epoch in range(a.epochs):
        model.train()
        perm = torch.randperm(len(x_train), generator=gen)
        t0 = time.perf_counter()
        total_n, correct, loss_sum = 0, 0, 0.0
        for i in range(0, len(x_train), a.batch_size):
            idx = perm[i : i + a.batch_size]
            xb = augment(x_train[idx], a.pad, a.erase, gen).contiguous(memory_format=fmt)
            yb = y_train[idx]
            lr = one_cycle(step, total, a.max_lr)
            for g in opt.param_groups:
                g["lr"] = lr
            opt.zero_grad(set_to_none=True)
            with torch_env.arithmetic(a.precision):
                out = model(xb)
                loss = F.cross_entropy(out.float(), yb, label_smoothing=a.label_smoothing)
            loss.backward()
            with torch.no_grad():
                for p in decay:
                    p.mul_(1 - lr * a.weight_decay)
            opt.step()
            step += 1
            loss_sum += loss.item() * len(idx)
            correct += (out.argmax(1) == yb).sum().item()
            total_n += len(idx)
        epoch_seconds.append(time.perf_counter() - t0)
        acc, _ = score()
        epoch_acc.append(acc)
        print(f"Epoch {epoch + 1}/{a.epochs} - {epoch_seconds[-1]:.1f}s - loss: {loss_sum / total_n:.4f} "
              f"- accuracy: {correct / total_n:.4f} - test_accuracy: {acc:.4f}", file=sys.stderr, flush=True)

    acc, loss = score()
    acc_tta, _ = score(flip_tta=True)
    print(json.dumps({"framework": "pytorch", "version": torch.__version__, "threads": a.threads, "epochs": a.epochs,
                      "batch_size": a.batch_size, "width": a.width, "blocks": list(blocks),
                      "zero_init_residual": a.zero_init_residual == 1,
                      "strides": list(strides), "stem_pool": a.stem_pool == 1,
                      "pooled_shortcut": a.pooled_shortcut == 1, "pool_downsample": a.pool_downsample == 1,
                      "dropout": a.dropout, "max_lr": a.max_lr,
                      "weight_decay": a.weight_decay, "label_smoothing": a.label_smoothing,
                      "pad": a.pad, "erase": a.erase, "layout": a.layout, "precision": a.precision,
                      "seed": a.seed,
                      "epoch_seconds": epoch_seconds, "epoch_test_accuracy": epoch_acc,
                      "train_seconds": sum(epoch_seconds), "test_accuracy": acc, "test_loss": loss,
                      "test_accuracy_flip_tta": acc_tta, "torch": torch_env.describe()}))


if __name__ == "__main__":
    main()
