#pragma once
// Canvas: an RGB picture to draw loom's report images on (rectangles, lines,
// enlarged grey images and text in the built-in font), kept in a loom::Image
// so that write_png saves it. Coordinates are pixels, x to the right and y
// down from the top-left corner; anything drawn outside the canvas is clipped.
//
// Thread safety: a plain value; one thread draws on a canvas at a time.

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <string>
#include <string_view>

#include "loom/error.hpp"
#include "loom/image/image.hpp"
#include "loom/report/font.hpp"

namespace loom::report {

struct Rgb {
  std::uint8_t r = 0, g = 0, b = 0;
  bool operator==(const Rgb&) const = default;
};

inline constexpr Rgb kWhite{255, 255, 255};
inline constexpr Rgb kBlack{0, 0, 0};

/// How grey pixel values become colours when an image is drawn.
enum class GreyMap {
  Direct,  // 0 is black, 255 is white (as stored)
  Ink,     // 0 is white, 255 is black: dark ink on paper, as matplotlib's "binary" colour map (grey only)
};

class Canvas {
 public:
  /// Throws UsageError on a size Image refuses (see loom/image/image.hpp).
  Canvas(int width, int height, Rgb background = kWhite) : image_(width, height, 3) {
    fill_rect(0, 0, width, height, background);
  }

  int width() const { return image_.width; }
  int height() const { return image_.height; }
  const Image& image() const { return image_; }

  bool contains(int x, int y) const { return x >= 0 && y >= 0 && x < width() && y < height(); }
  void set(int x, int y, Rgb c) {
    if (!contains(x, y)) return;
    image_.at(x, y, 0) = c.r;
    image_.at(x, y, 1) = c.g;
    image_.at(x, y, 2) = c.b;
  }
  /// The colour at (x, y), which must lie on the canvas.
  Rgb get(int x, int y) const {
    if (!contains(x, y))
      throw UsageError("Canvas::get: (" + std::to_string(x) + ", " + std::to_string(y) + ") is outside the " +
                       std::to_string(width()) + "x" + std::to_string(height()) + " canvas");
    return {image_.at(x, y, 0), image_.at(x, y, 1), image_.at(x, y, 2)};
  }

  /// The w x h rectangle whose top-left pixel is (x, y).
  void fill_rect(int x, int y, int w, int h, Rgb c) {
    const int x0 = std::max(x, 0), y0 = std::max(y, 0);
    const int x1 = std::min(x + w, width()), y1 = std::min(y + h, height());
    for (int yy = y0; yy < y1; ++yy)
      for (int xx = x0; xx < x1; ++xx) set(xx, yy, c);
  }
  /// The one-pixel border of that rectangle.
  void outline_rect(int x, int y, int w, int h, Rgb c) {
    if (w <= 0 || h <= 0) return;
    fill_rect(x, y, w, 1, c);
    fill_rect(x, y + h - 1, w, 1, c);
    fill_rect(x, y, 1, h, c);
    fill_rect(x + w - 1, y, 1, h, c);
  }

  /// A one-pixel line from (x0, y0) to (x1, y1), both ends included (Bresenham).
  void line(int x0, int y0, int x1, int y1, Rgb c) {
    const int dx = std::abs(x1 - x0), dy = -std::abs(y1 - y0);
    const int sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1;
    for (int err = dx + dy;;) {
      set(x0, y0, c);
      if (x0 == x1 && y0 == y1) return;
      const int e2 = 2 * err;
      if (e2 >= dy) err += dy, x0 += sx;
      if (e2 <= dx) err += dx, y0 += sy;
    }
  }

  /// Draws a w x h image of 1 (grey) or 3 (RGB) channels, row-major, with each
  /// pixel enlarged to a scale x scale block whose top-left corner is at (x, y).
  void draw_image(std::span<const std::uint8_t> pixels, int w, int h, int channels, int x, int y, int scale = 1,
                  GreyMap grey = GreyMap::Direct) {
    if (channels != 1 && channels != 3)
      throw ShapeError("Canvas::draw_image: expected 1 (grey) or 3 (RGB) channels, got " + std::to_string(channels));
    if (w < 0 || h < 0 || pixels.size() != static_cast<std::size_t>(w) * h * channels)
      throw ShapeError("Canvas::draw_image: " + std::to_string(pixels.size()) + " bytes do not hold a " +
                       std::to_string(w) + "x" + std::to_string(h) + " image of " + std::to_string(channels) +
                       " channels");
    if (scale < 1) throw UsageError("Canvas::draw_image: scale must be at least 1, got " + std::to_string(scale));
    for (int py = 0; py < h; ++py)
      for (int px = 0; px < w; ++px) {
        const std::uint8_t* p = pixels.data() + (static_cast<std::size_t>(py) * w + px) * channels;
        const auto v = static_cast<std::uint8_t>(grey == GreyMap::Ink ? 255 - p[0] : p[0]);
        const Rgb c = channels == 1 ? Rgb{v, v, v} : Rgb{p[0], p[1], p[2]};
        fill_rect(x + px * scale, y + py * scale, scale, scale, c);
      }
  }

  /// Width and height in pixels of s drawn at scale (one line; no trailing spacing).
  static int text_width(std::string_view s, int scale = 1) {
    return s.empty() ? 0 : (static_cast<int>(s.size()) * Font::advance - 1) * scale;
  }
  static int text_height(int scale = 1) { return Font::glyph_height * scale; }

  /// Draws s left to right with the top-left of its first glyph at (x, y);
  /// each font pixel becomes a scale x scale block. Returns the width drawn.
  int text(int x, int y, std::string_view s, Rgb c, int scale = 1) {
    draw_glyphs(s, scale, [&](int u, int v) { fill_rect(x + u, y + v, scale, scale, c); });
    return text_width(s, scale);
  }
  /// Draws s turned 90 degrees counter-clockwise, reading bottom to top (a
  /// y-axis title). The text starts at row y and rises; the tops of its glyphs
  /// face column x, so it covers columns [x, x + text_height) and rows
  /// (y - text_width, y].
  int text_up(int x, int y, std::string_view s, Rgb c, int scale = 1) {
    draw_glyphs(s, scale, [&](int u, int v) { fill_rect(x + v, y - u - scale + 1, scale, scale, c); });
    return text_width(s, scale);
  }

  /// Text placed by its centre or its right end instead of its left end.
  int text_centered(int cx, int y, std::string_view s, Rgb c, int scale = 1) {
    return text(cx - text_width(s, scale) / 2, y, s, c, scale);
  }
  int text_right(int right, int y, std::string_view s, Rgb c, int scale = 1) {
    return text(right - text_width(s, scale) + 1, y, s, c, scale);
  }

 private:
  // Calls plot(u, v) for each ink pixel of s, u along the text and v down
  // from its top, both already multiplied by scale.
  template <typename Plot>
  static void draw_glyphs(std::string_view s, int scale, Plot&& plot) {
    if (scale < 1) throw UsageError("Canvas: text scale must be at least 1, got " + std::to_string(scale));
    for (std::size_t i = 0; i < s.size(); ++i) {
      const auto rows = glyph(s[i]);
      const int left = static_cast<int>(i) * Font::advance;
      for (int v = 0; v < Font::glyph_height; ++v)
        for (int u = 0; u < Font::glyph_width; ++u)
          if (rows[v] >> (Font::glyph_width - 1 - u) & 1) plot((left + u) * scale, v * scale);
    }
  }

  Image image_;
};

}  // namespace loom::report
