#pragma once
// Training curves as a standalone SVG picture: two panels side by side, loss
// and accuracy per epoch, each with the training values as a solid line and
// the validation values as a dashed one, as Keras users plot
// history.history["loss"] and ["val_loss"]. Every value is also marked with a
// dot, so a single epoch still shows.
//
// - x: the epochs' own numbers (EpochRecord::epoch), so a resumed run keeps its count.
// - y: each panel fits its values, on round ticks; it need not start at 0.
// - A series with no value (validation when fit had none) is left out, with
//   its legend entry; non-finite values (a diverged loss) are skipped.
// - An empty history has nothing to draw: training_curves_svg throws
//   UsageError, and write_evaluation_report writes no curves file.
//
// Thread safety: pure functions; safe from many threads.

#include <algorithm>
#include <cmath>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "loom/error.hpp"
#include "loom/report/format.hpp"
#include "loom/report/xml_escape.hpp"
#include "loom/training/history.hpp"

namespace loom::report {

/// Round tick positions covering [lo, hi]: steps of 1, 2 or 5 times a power of ten.
struct Ticks {
  double first = 0.0, last = 1.0, step = 1.0;
  int decimals = 0;  // enough to tell the ticks apart

  /// About target ticks over [lo, hi]; an empty or single-valued range is widened.
  static Ticks covering(double lo, double hi, int target = 5) {
    if (!std::isfinite(lo) || !std::isfinite(hi)) lo = 0.0, hi = 1.0;
    if (hi - lo < 1e-9 * std::max(1.0, std::abs(hi))) {
      const double pad = std::max(0.05 * std::abs(hi), 0.05);
      lo -= pad;
      hi += pad;
    }
    Ticks t;
    t.step = nice_step((hi - lo) / std::max(1, target - 1));
    t.first = std::floor(lo / t.step + 1e-9) * t.step;
    t.last = std::ceil(hi / t.step - 1e-9) * t.step;
    t.decimals = std::max(0, static_cast<int>(-std::floor(std::log10(t.step) + 1e-9)));
    return t;
  }
  /// The smallest of 1, 2, 5 times a power of ten that is at least raw.
  static double nice_step(double raw) {
    const double p = std::pow(10.0, std::floor(std::log10(raw)));
    for (const double m : {1.0, 2.0, 5.0})
      if (raw <= m * p * (1 + 1e-9)) return m * p;
    return 10.0 * p;
  }
  std::vector<double> values() const {
    std::vector<double> v;
    for (int i = 0; first + i * step <= last + step * 1e-6; ++i) v.push_back(first + i * step);
    return v;
  }
};

namespace detail {

struct Series {
  std::string name;
  std::string colour;
  bool dashed = false;
  std::vector<std::pair<double, double>> points;  // (epoch, value), finite only
};

// One panel of the picture: frame, grid, ticks, labels, legend and lines, in
// the box (left, top, width, height) of the whole SVG.
inline std::string svg_panel(double left, double top, double width, double height, std::string_view title,
                             std::string_view y_label, const std::vector<Series>& series) {
  const double x0 = left + 64, x1 = left + width - 16, y0 = top + 40, y1 = top + height - 48;
  double ex_lo = INFINITY, ex_hi = -INFINITY, lo = INFINITY, hi = -INFINITY;
  for (const Series& s : series)
    for (const auto& [e, v] : s.points) {
      ex_lo = std::min(ex_lo, e), ex_hi = std::max(ex_hi, e);
      lo = std::min(lo, v), hi = std::max(hi, v);
    }
  if (!(ex_lo <= ex_hi)) ex_lo = ex_hi = 1;          // no finite value at all
  const double first_epoch = ex_lo, last_epoch = ex_hi;  // ticks only where there are epochs
  if (ex_lo == ex_hi) ex_lo -= 1, ex_hi += 1;         // one epoch: centre it
  const double ex_pad = 0.04 * (ex_hi - ex_lo);       // keep the end points off the frame
  const Ticks yt = Ticks::covering(lo, hi);
  const double ex_step = std::max(1.0, Ticks::nice_step((ex_hi - ex_lo) / 8));
  const auto sx = [&](double e) { return x0 + (e - ex_lo + ex_pad) / (ex_hi - ex_lo + 2 * ex_pad) * (x1 - x0); };
  const auto sy = [&](double v) { return y1 - (v - yt.first) / (yt.last - yt.first) * (y1 - y0); };
  const auto num = [](double v) { return format("%.2f", v); };

  std::string s = "<g>\n";
  s += format("<text x=\"%s\" y=\"%s\" font-size=\"15\" font-weight=\"bold\">%s</text>\n", num(x0).c_str(),
              num(top + 22).c_str(), xml_escape(title).c_str());
  // Legend, right-aligned in the header: a short sample of each line, then its name.
  double lx = x1;
  for (auto it = series.rbegin(); it != series.rend(); ++it) {
    if (it->points.empty()) continue;
    lx -= 7.0 * static_cast<double>(it->name.size()) + 34;
    s += format("<line x1=\"%s\" y1=\"%s\" x2=\"%s\" y2=\"%s\" stroke=\"%s\" stroke-width=\"2\"%s/>\n",
                num(lx).c_str(), num(top + 18).c_str(), num(lx + 22).c_str(), num(top + 18).c_str(),
                it->colour.c_str(), it->dashed ? " stroke-dasharray=\"6 4\"" : "");
    s += format("<text x=\"%s\" y=\"%s\">%s</text>\n", num(lx + 27).c_str(), num(top + 22).c_str(),
                xml_escape(it->name).c_str());
  }
  // Grid and ticks.
  for (const double v : yt.values()) {
    s += format("<line x1=\"%s\" y1=\"%s\" x2=\"%s\" y2=\"%s\" stroke=\"#e0e0e0\"/>\n", num(x0).c_str(),
                num(sy(v)).c_str(), num(x1).c_str(), num(sy(v)).c_str());
    s += format("<text x=\"%s\" y=\"%s\" text-anchor=\"end\">%s</text>\n", num(x0 - 6).c_str(),
                num(sy(v) + 4).c_str(), fixed(v, yt.decimals).c_str());
  }
  for (double e = std::ceil(first_epoch / ex_step) * ex_step; e <= last_epoch + 1e-9; e += ex_step) {
    s += format("<line x1=\"%s\" y1=\"%s\" x2=\"%s\" y2=\"%s\" stroke=\"#444\"/>\n", num(sx(e)).c_str(),
                num(y1).c_str(), num(sx(e)).c_str(), num(y1 + 5).c_str());
    s += format("<text x=\"%s\" y=\"%s\" text-anchor=\"middle\">%s</text>\n", num(sx(e)).c_str(),
                num(y1 + 18).c_str(), fixed(e, 0).c_str());
  }
  s += format("<rect x=\"%s\" y=\"%s\" width=\"%s\" height=\"%s\" fill=\"none\" stroke=\"#444\"/>\n",
              num(x0).c_str(), num(y0).c_str(), num(x1 - x0).c_str(), num(y1 - y0).c_str());
  s += format("<text x=\"%s\" y=\"%s\" text-anchor=\"middle\">epoch</text>\n", num((x0 + x1) / 2).c_str(),
              num(y1 + 38).c_str());
  s += format("<text transform=\"translate(%s %s) rotate(-90)\" text-anchor=\"middle\">%s</text>\n",
              num(left + 16).c_str(), num((y0 + y1) / 2).c_str(), xml_escape(y_label).c_str());
  // The lines: one polyline per series, a dot per value.
  for (const Series& ser : series) {
    if (ser.points.empty()) continue;
    std::string pts;
    for (const auto& [e, v] : ser.points) {  // appended piece by piece: g++ 12 warns (falsely) on "a" + b + ...
      if (!pts.empty()) pts += ' ';
      pts += num(sx(e));
      pts += ',';
      pts += num(sy(v));
    }
    s += format("<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\"%s points=\"%s\"/>\n", ser.colour.c_str(),
                ser.dashed ? " stroke-dasharray=\"6 4\"" : "", pts.c_str());
    for (const auto& [e, v] : ser.points)
      s += format("<circle cx=\"%s\" cy=\"%s\" r=\"3\" fill=\"%s\"/>\n", num(sx(e)).c_str(), num(sy(v)).c_str(),
                  ser.colour.c_str());
  }
  return s + "</g>\n";
}

// The finite values of one field of every epoch, as (epoch, value).
template <typename Get>
std::vector<std::pair<double, double>> points(const History& h, Get get) {
  std::vector<std::pair<double, double>> out;
  for (const EpochRecord& e : h.epochs) {
    const std::optional<double> v = get(e);
    if (v && std::isfinite(*v)) out.emplace_back(e.epoch, *v);
  }
  return out;
}

}  // namespace detail

/// The two-panel SVG document for h; title, when given, heads the picture.
/// Throws UsageError when h has no epochs.
inline std::string training_curves_svg(const History& h, std::string_view title = "") {
  if (h.empty()) throw UsageError("training_curves_svg: the history has no epochs to draw");
  using detail::points;
  using R = const EpochRecord&;
  const std::string train = "#1f77b4", val = "#ff7f0e";  // matplotlib's first two colours
  const std::vector<detail::Series> loss = {
      {"train", train, false, points(h, [](R e) { return std::optional(e.loss); })},
      {"validation", val, true, points(h, [](R e) { return e.val_loss; })}};
  const std::vector<detail::Series> accuracy = {
      {"train", train, false, points(h, [](R e) { return std::optional(e.accuracy); })},
      {"validation", val, true, points(h, [](R e) { return e.val_accuracy; })}};

  const double panel_w = 480, panel_h = 340, head = title.empty() ? 0 : 32;
  const double width = 2 * panel_w, height = head + panel_h;
  std::string s = format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" "
      "font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\" font-size=\"12\" fill=\"#222\">\n",
      width, height, width, height);
  s += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  if (!title.empty())
    s += format("<text x=\"%.0f\" y=\"22\" text-anchor=\"middle\" font-size=\"16\">%s</text>\n", width / 2,
                xml_escape(title).c_str());
  s += detail::svg_panel(0, head, panel_w, panel_h, "Loss", "loss", loss);
  s += detail::svg_panel(panel_w, head, panel_w, panel_h, "Accuracy", "accuracy", accuracy);
  return s + "</svg>\n";
}

}  // namespace loom::report
