#pragma once
// A tiny built-in bitmap font, so that loom can label its pictures without a
// font library: printable ASCII (32-126) as 5x9-pixel glyphs, drawn in a
// 6x10 cell (one column and one row of spacing).
//
//   rows 0-6   capitals, digits and ascenders; the baseline is under row 6
//   rows 2-6   the lower-case x-height
//   rows 7-8   descenders (g j p q y) and the underscore
//
// Any other character (tab, UTF-8 bytes) draws as a hollow box, so a missing
// glyph shows up instead of vanishing.
//
// Thread safety: read-only data; safe from many threads.

#include <cstdint>
#include <span>

namespace loom::report {

struct Font {
  static constexpr int glyph_width = 5;
  static constexpr int glyph_height = 9;
  static constexpr int advance = 6;       // pixels from one character to the next, at scale 1
  static constexpr int line_height = 10;  // pixels from one line to the next, at scale 1
};

/// The glyph_height rows of c's glyph; bit (glyph_width - 1 - x) of row y is pixel (x, y).
std::span<const std::uint8_t, Font::glyph_height> glyph(char c);

}  // namespace loom::report
