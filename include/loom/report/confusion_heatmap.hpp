#pragma once
// The confusion matrix as a picture: one square cell per (true, predicted)
// pair, rows true classes and columns predicted classes as in the text table
// and in scikit-learn's ConfusionMatrixDisplay.
//
// A cell's colour is its share of the row, count / support(true class), on
// the viridis scale (dark purple 0%, yellow 100%), so classes of different
// sizes compare fairly and the diagonal reads as recall; the number written
// in the cell is the raw count. A colour bar on the right gives the scale.
//
//   title, subtitle
//   "True class" (turned)   row names   [ K x K cells ]   colour bar 0%..100%
//                                        column names (turned, reading upwards)
//                                        "Predicted class"
//
// Text is drawn at twice the font size for up to 20 classes and at the font
// size beyond; cells grow to fit the widest count.
//
// Thread safety: pure function; safe from many threads.

#include <algorithm>
#include <span>
#include <string>
#include <vector>

#include "loom/report/canvas.hpp"
#include "loom/report/class_names.hpp"
#include "loom/report/colormap.hpp"
#include "loom/report/confusion_matrix.hpp"

namespace loom::report {

/// names: one per class, or empty for class numbers; subtitle: a second title
/// line (for example "10000 test images, accuracy 0.9087"), or empty.
inline Canvas draw_confusion_heatmap(const ConfusionMatrix& m, std::span<const std::string> names = {},
                                     const std::string& subtitle = "") {
  const Index k = m.num_classes();
  const std::vector<std::string> shown = class_names_or_numbers(names, k);
  const int s = k <= 20 ? 2 : 1;  // text scale
  const int line = Font::line_height * s, text_h = Canvas::text_height(s), pad = 8 * s;
  int name_w = 0;
  for (const std::string& n : shown) name_w = std::max(name_w, Canvas::text_width(n, s));
  const int cell = std::max(28 * s, Canvas::text_width(std::to_string(m.max_count()), s) + 6 * s);
  const int grid = static_cast<int>(k) * cell;
  const std::string row_title = "True class", col_title = "Predicted class", bar_title = "share of true class";

  const int grid_top = pad + line + (subtitle.empty() ? 0 : line) + pad;
  const int grid_left = pad + text_h + pad + name_w + pad;
  const int grid_bottom = grid_top + grid;
  const int grid_right = grid_left + grid;
  const int bar_left = grid_right + 2 * pad, bar_w = 10 * s;
  const int tick_left = bar_left + bar_w + 6 * s;
  const int bar_title_left = tick_left + Canvas::text_width("100%", s) + pad;
  // Where a turned title centred on the grid's rows ends (its lowest row); never above the canvas top.
  const auto turned_bottom = [&](const std::string& t) {
    const int w = Canvas::text_width(t, s);
    return std::max(grid_top + grid / 2 + w / 2, pad + w);
  };
  const int width = std::max({bar_title_left + text_h + pad, grid_left + Canvas::text_width(col_title, s) + pad,
                              2 * pad + Canvas::text_width(subtitle, s)});
  const int height = std::max({grid_bottom + pad + name_w + pad + text_h + pad, turned_bottom(row_title) + pad,
                               turned_bottom(bar_title) + pad});

  Canvas c(width, height);
  const Rgb dark{40, 40, 40}, grey{110, 110, 110};
  c.text(pad, pad, "Confusion matrix", dark, s);
  if (!subtitle.empty()) c.text(pad, pad + line, subtitle, grey, s);

  for (Label t = 0; t < k; ++t) {
    const Index support = m.support(t);
    for (Label p = 0; p < k; ++p) {
      const Index n = m.count(t, p);
      const double share = support == 0 ? 0.0 : static_cast<double>(n) / static_cast<double>(support);
      const Rgb bg = viridis(share);
      const int x = grid_left + p * cell, y = grid_top + t * cell;
      c.fill_rect(x, y, cell - 1, cell - 1, bg);  // the 1-pixel gap draws the grid in white
      c.text_centered(x + cell / 2, y + (cell - text_h) / 2, std::to_string(n), text_colour_on(bg), s);
    }
  }
  // Row names right-aligned against the grid; column names turned, ending just below it.
  for (Label i = 0; i < k; ++i) {
    c.text_right(grid_left - pad, grid_top + i * cell + (cell - text_h) / 2, shown[i], dark, s);
    c.text_up(grid_left + i * cell + (cell - text_h) / 2, grid_bottom + pad / 2 + Canvas::text_width(shown[i], s),
              shown[i], dark, s);
  }
  c.text_up(pad, turned_bottom(row_title), row_title, dark, s);
  c.text_centered(grid_left + grid / 2, grid_bottom + pad + name_w + pad, col_title, dark, s);

  // Colour bar: 100% at the top, 0% at the bottom, ticks every 25%.
  for (int y = 0; y < grid; ++y) c.fill_rect(bar_left, grid_top + y, bar_w, 1, viridis(1.0 - (y + 0.5) / grid));
  c.outline_rect(bar_left - 1, grid_top - 1, bar_w + 2, grid + 2, grey);
  for (int q = 0; q <= 4; ++q) {
    const int y = grid_bottom - 1 - (grid - 1) * q / 4;
    c.fill_rect(bar_left + bar_w, y, 2 * s, 1, grey);
    c.text(tick_left, std::clamp(y - text_h / 2, 0, height - text_h), std::to_string(25 * q) + "%", dark, s);
  }
  c.text_up(bar_title_left, turned_bottom(bar_title), bar_title, grey, s);
  return c;
}

}  // namespace loom::report
