#pragma once
// The picture of a visual search (loom search --grid): one row per query,
// the query photo as given, then what the model saw of it (28x28, enlarged),
// then its neighbours in rank order, each with its class and score under it.
// Model inputs are drawn dark on light, as the mistake grid draws them.
//
//   [photo] [seen] | [n1] [n2] ... [nk]
//    file    query    Shirt  Shirt
//                     0.973  0.968
//
// Thread safety: pure functions; safe from many threads.

#include <algorithm>
#include <string>
#include <vector>

#include "loom/image/grey.hpp"
#include "loom/image/resize.hpp"
#include "loom/report/canvas.hpp"
#include "loom/report/format.hpp"

namespace loom::report {

struct GridNeighbour {
  Image seen;           // grey model input, light on black
  std::string caption;  // class name
  float score = 0.0f;
};

struct GridQuery {
  std::string title;  // the query file's name
  Image photo;        // as read (any channels); empty: not drawn
  Image seen;         // grey model input
  std::vector<GridNeighbour> neighbours;
};

namespace detail {
// image as 1 or 3 channels, fitted into a box x box square (aspect kept).
inline Image fit_for_canvas(const Image& image, int box) {
  Image flat = image.channels == 1 || image.channels == 3 ? image : to_grey(image);
  const double s = static_cast<double>(box) / std::max(flat.width, flat.height);
  return resize(flat, std::max(1, static_cast<int>(flat.width * s)), std::max(1, static_cast<int>(flat.height * s)));
}
// The caption shortened to fit width pixels.
inline std::string fit_text(std::string s, int width) {
  while (!s.empty() && Canvas::text_width(s) > width) s.pop_back();
  return s;
}
}  // namespace detail

inline Canvas draw_neighbour_grid(const std::vector<GridQuery>& queries, int scale = 3) {
  if (scale < 1) throw UsageError("draw_neighbour_grid: scale must be at least 1, got " + std::to_string(scale));
  int side = 0;  // side of a model input, in pixels
  std::size_t k = 0;
  for (const GridQuery& q : queries) {
    side = std::max(side, q.seen.width * scale);
    k = std::max(k, q.neighbours.size());
  }
  const int gap = 10, line = Font::line_height + 2, tile = side + gap;
  const int row_h = side + 6 + 2 * line + gap;
  const int width = gap + 2 * tile + gap + static_cast<int>(k) * tile;
  const int height = gap + std::max<int>(1, static_cast<int>(queries.size())) * row_h;
  Canvas c(width, height);
  const Rgb dark{40, 40, 40}, grey{120, 120, 120}, frame{200, 200, 200}, rule{160, 160, 160};
  const auto draw_seen = [&](const Image& im, int x, int y) {
    c.draw_image(im.pixels, im.width, im.height, im.channels, x, y, scale, GreyMap::Ink);
    c.outline_rect(x - 1, y - 1, im.width * scale + 2, im.height * scale + 2, frame);
  };
  for (std::size_t r = 0; r < queries.size(); ++r) {
    const GridQuery& q = queries[r];
    const int y = gap + static_cast<int>(r) * row_h;
    if (!q.photo.empty()) {
      const Image photo = detail::fit_for_canvas(q.photo, side);
      c.draw_image(photo.pixels, photo.width, photo.height, photo.channels, gap + (side - photo.width) / 2,
                   y + (side - photo.height) / 2);
    }
    c.text(gap, y + side + 6, detail::fit_text(q.title, 2 * side), dark);
    draw_seen(q.seen, gap + tile, y);
    c.text(gap + tile, y + side + 6 + line, "query", grey);
    const int x0 = gap + 2 * tile + gap / 2;
    c.fill_rect(x0 - gap / 2 - 1, y, 1, side, rule);
    for (std::size_t i = 0; i < q.neighbours.size(); ++i) {
      const GridNeighbour& n = q.neighbours[i];
      const int x = x0 + static_cast<int>(i) * tile;
      draw_seen(n.seen, x, y);
      c.text(x, y + side + 6, detail::fit_text(n.caption, side), dark);
      c.text(x, y + side + 6 + line, fixed(n.score, 3), grey);
    }
  }
  return c;
}

}  // namespace loom::report
