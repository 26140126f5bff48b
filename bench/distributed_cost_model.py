#!/usr/bin/env python3
"""Predicted efficiency of data-parallel training across hosts (docs/distributed.md).

A step on R ranks with a global batch B:
  compute   t0 + c * B / R          c: seconds per sample on one rank, t0: per step
                                    (optimizer, packing), both measured on this machine
  allreduce 2 (R - 1) * alpha + 2 (R - 1) / R * S / bw
                                    ring allreduce of S bytes: every rank sends and
                                    receives 2 (R - 1) / R * S; alpha per message
  efficiency = (t0 + c * B) / (R * step(R))   (one rank doing the whole batch = 1)

Prints, per model and link speed, the efficiency at R = 2..64 for the global batch
given, and the smallest global batch at which communication stays within 10 % of
a step (where it pays: efficiency above about 0.9 of what compute alone allows).

  bench/distributed_cost_model.py [--batch 32] [--alpha-us 20]
"""
import argparse

# Measured with bench/distributed_scaling.py (2 ranks x 1 thread; docs/distributed.md):
# per-sample compute from the step time minus the time in collectives, 16 samples a rank.
MODELS = {
    "seed": {"bytes": 900_144, "c": (5.630 - 0.504) / 16 * 1e-3},
    "wide": {"bytes": 4_491_824, "c": (175.628 - 12.930) / 16 * 1e-3},
}
T0 = 0.1e-3  # per-step fixed cost (optimizer step, packing), see docs/distributed.md
LINKS_GBIT = (10, 25, 100)
RANKS = (2, 4, 8, 16, 32, 64)


def allreduce(r, size, bw, alpha):
    return 2 * (r - 1) * alpha + 2 * (r - 1) / r * size / bw


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=32, help="global batch (default 32)")
    p.add_argument("--alpha-us", type=float, default=20.0, help="latency per message, µs (default 20: TCP)")
    a = p.parse_args()
    alpha = a.alpha_us * 1e-6
    print(f"global batch {a.batch}, latency {a.alpha_us:g} µs per message")
    header = "model  link     " + "".join(f"R={r:<7}" for r in RANKS)
    print("efficiency (1.00 = R times one rank):\n" + header)
    for name, m in MODELS.items():
        for gbit in LINKS_GBIT:
            bw = gbit * 1e9 / 8
            eff = [(T0 + m["c"] * a.batch) / (r * (T0 + m["c"] * a.batch / r + allreduce(r, m["bytes"], bw, alpha)))
                   for r in RANKS]
            print(f"{name:6} {gbit:>3} Gb/s " + "".join(f"{e:<9.2f}" for e in eff))
    # communication <= 10 % of a step: c * B / R >= 9 * allreduce, so B >= 9 R allreduce / c
    print("\nsmallest global batch with communication <= 10 % of a step:\n" + header)
    for name, m in MODELS.items():
        for gbit in LINKS_GBIT:
            bw = gbit * 1e9 / 8
            pays = [9 * r * allreduce(r, m["bytes"], bw, alpha) / m["c"] for r in RANKS]
            print(f"{name:6} {gbit:>3} Gb/s " + "".join(f"{b:<9.0f}" for b in pays))

if __name__ == "__main__":
    main()
