#!/usr/bin/python3
"""The benchmark suite's results as one picture (SVG), from suite.py's JSON.

  /usr/bin/python3 bench/suite.py --chart suite.svg            # measure, then draw
  /usr/bin/python3 bench/suite_chart.py suite.json suite.svg   # draw a saved run again

Four panels, each model a row, every measure as "higher is better" against
its target (dashed) and parity with PyTorch (grey):
  training step      PyTorch's time over loom's (target 1/0.75: loom <= 0.75x its time)
  inference          loom's images/s over PyTorch's at batch 256 (target 1.5)
  memory             PyTorch's training peak RSS over loom's (target: above 1)
  conv layers        each conv layer's GFLOP/s as a share of the run's GEMM
                     peak, forward filled, backward hollow (target 70 %)
Bars and dots are green where the target passes and red where it fails.
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from suite_targets import TARGET_CONV_PEAK, TARGET_INFERENCE_BATCH, TARGET_INFERENCE_RATIO, TARGET_TRAIN_RATIO  # noqa: E402
from svg import Svg  # noqa: E402

PASS, FAIL, TARGET, PARITY, GRID = "#2ca02c", "#d62728", "#555", "#999", "#e4e4e4"
PANEL_W, ROW_H, LABEL_W, TOP, GAP, PLOT_TOP = 430, 22, 60, 40, 30, 36


class _Frame:
    """A panel's title, its rows' labels and the x axis (grid and ticks) from 0 to x_max; px maps a value to x."""

    def __init__(self, svg, x0, y0, title, labels, x_max, ticks, tick_label):
        self.svg, self.x_left, self.x_max = svg, x0 + LABEL_W, x_max
        self.top, self.bottom = y0 + PLOT_TOP, y0 + PLOT_TOP + ROW_H * len(labels)
        svg.text(self.x_left, y0 + 12, title, font_weight="bold")
        for t in ticks:
            svg.line(self.px(t), self.top, self.px(t), self.bottom, GRID)
            svg.text(self.px(t), self.bottom + 14, tick_label(t), anchor="middle", fill="#444", font_size=11)
        for i, label in enumerate(labels):
            svg.text(self.x_left - 6, self.row_middle(i) + 4, label, anchor="end")

    def px(self, v):
        return self.x_left + (PANEL_W - LABEL_W - 50) * min(max(v, 0.0), self.x_max) / self.x_max

    def row_middle(self, i):
        return self.top + ROW_H * i + ROW_H / 2

    def line_at(self, v, colour, label=None, dash=None):
        """A vertical line at value v across the rows, labelled above them when given."""
        self.svg.line(self.px(v), self.top - 4, self.px(v), self.bottom, colour, width=1.5, dash=dash)
        if label:
            self.svg.text(self.px(v) + 3, self.top - 5, label, fill=colour, font_size=11)


def _panel(svg, x0, y0, title, rows, x_max, target, target_label, ticks):
    """A horizontal bar per row, [(label, value or None, passed)], from 0 to x_max, values as ratios."""
    f = _Frame(svg, x0, y0, title, [label for label, _, _ in rows], x_max, ticks, lambda t: f"{t:g}x")
    for i, (_, value, passed) in enumerate(rows):
        y = f.row_middle(i)
        if value is None:
            svg.text(f.px(0) + 4, y + 4, "not measured", fill="#888", font_size=11)
            continue
        svg.rect(f.px(0), y - ROW_H / 2 + 4, f.px(value) - f.px(0), ROW_H - 8, PASS if passed else FAIL)
        clipped = "+" if value > x_max else ""
        svg.text(f.px(value) + 4, y + 4, f"{value:.2f}x{clipped}", font_size=11)
    f.line_at(1.0, PARITY)
    f.line_at(target, TARGET, target_label, dash="5,4")


def _conv_panel(svg, x0, y0, models, layers, target, x_max=2.0):
    """Each model's conv layers as dots at their share of the GEMM peak: forward filled, backward hollow."""
    rows = [m for m in models if any(l["model"] == m for l in layers)]
    f = _Frame(svg, x0, y0, "Conv layers: share of the GEMM peak", rows, x_max, (0.0, 0.5, 1.0, 1.5, 2.0),
               lambda t: f"{t:.0%}")
    for i, m in enumerate(rows):
        for l in layers:
            if l["model"] != m:
                continue
            colour = PASS if l["fraction_of_peak"] >= target else FAIL
            forward = l["pass"] == "forward"
            svg.circle(f.px(l["fraction_of_peak"]), f.row_middle(i) + (-3 if forward else 3), 3.5,
                       fill=colour if forward else "white", stroke=colour)
    f.line_at(target, TARGET, f"target {target:.0%}", dash="5,4")
    svg.text(f.x_left, f.bottom + 30, "filled: forward, hollow: backward; beyond 200 % drawn at 200 %",
             fill="#444", font_size=11)


def suite_svg(report):
    """The picture of one suite run (suite.py's report, as written to --json-out)."""
    models = report["models"]
    b = str(TARGET_INFERENCE_BATCH)
    train_target, inf_target, conv_target = 1 / TARGET_TRAIN_RATIO, TARGET_INFERENCE_RATIO, TARGET_CONV_PEAK

    def inv(x):
        return None if not x else 1 / x

    train = [(m, inv(v["train_step_ms"]["ratio"]), (v["train_step_ms"]["ratio"] or 99) <= TARGET_TRAIN_RATIO)
             for m, v in models.items()]
    inference = [(m, v["inference"].get(b, {}).get("ratio"), (v["inference"].get(b, {}).get("ratio") or 0) >= inf_target)
                 for m, v in models.items()]
    memory = []
    for m, v in models.items():
        r = v["train_peak_rss_mb"]
        ratio = r["pytorch"] / r["loom"] if r.get("pytorch") and r.get("loom") else None
        memory.append((m, ratio, ratio is not None and ratio > 1))

    def top_of(rows, at_least):
        values = [v for _, v, _ in rows if v is not None]
        return max([at_least] + [v * 1.15 for v in values])

    w = 2 * PANEL_W + GAP + 20
    title = (f"loom against PyTorch ({report.get('pytorch', {}).get('blas', 'its BLAS')}), "
             f"{report.get('threads', '?')} threads, {report.get('machine', {}).get('cpu', '')} "
             f"- loom {report.get('loom_commit', '')}")
    rows_h = PLOT_TOP + ROW_H * len(models) + 50
    svg = Svg(w, TOP + 2 * rows_h + 10, title)
    x_left, x_right = 10, 10 + PANEL_W + GAP
    _panel(svg, x_left, TOP, "Training step: PyTorch's time / loom's", train, top_of(train, train_target * 1.3),
           train_target, f"target {train_target:.2f}x", [0, 1, 2, 3])
    _panel(svg, x_right, TOP, f"Inference, batch {b}: loom's images/s / PyTorch's", inference,
           top_of(inference, inf_target * 1.3), inf_target, f"target {inf_target:.1f}x", [0, 1, 2, 3])
    _panel(svg, x_left, TOP + rows_h, "Peak memory training: PyTorch's / loom's", memory,
           top_of(memory, 2.0), 1.0, "target: above 1x", [0, 5, 10, 15])
    _conv_panel(svg, x_right, TOP + rows_h, list(models), report.get("conv_layers", []), conv_target)
    svg.text(w / 2, TOP + 2 * rows_h, "green: the target is met; red: it is not; grey line: PyTorch's own figure",
             anchor="middle", fill="#444", font_size=11)
    return svg.render()


def main(argv):
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        with open(argv[1]) as f:
            report = json.load(f)
        if report.get("kind") != "loom_suite_vs_pytorch":
            raise ValueError(f"{argv[1]} is not suite.py's JSON (kind {report.get('kind')!r})")
        svg = suite_svg(report)
    except (OSError, ValueError, KeyError) as e:
        print(f"suite_chart: {e}", file=sys.stderr)
        return 2
    with open(argv[2], "w") as f:
        f.write(svg)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
