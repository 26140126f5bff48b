#pragma once
// The viridis colour map (matplotlib's default, and scikit-learn's for
// confusion matrices): dark purple for 0 through blue and green to yellow for
// 1. Its lightness rises evenly, so it reads correctly in grey print and to
// colour-blind readers. Nine stops, linearly interpolated.
//
// Thread safety: pure functions; safe from many threads.

#include <algorithm>
#include <array>
#include <cmath>

#include "loom/report/canvas.hpp"

namespace loom::report {

/// The colour of t in [0, 1] (clamped; NaN counts as 0).
inline Rgb viridis(double t) {
  static constexpr std::array<Rgb, 9> kStops = {{{68, 1, 84},
                                                 {71, 45, 123},
                                                 {59, 82, 139},
                                                 {44, 114, 142},
                                                 {33, 145, 140},
                                                 {40, 174, 128},
                                                 {94, 201, 98},
                                                 {173, 220, 48},
                                                 {253, 231, 37}}};
  if (!(t > 0.0)) t = 0.0;
  const double pos = std::min(t, 1.0) * (kStops.size() - 1);
  const auto i = std::min(static_cast<std::size_t>(pos), kStops.size() - 2);
  const double f = pos - static_cast<double>(i);
  const auto mix = [f](std::uint8_t a, std::uint8_t b) {
    return static_cast<std::uint8_t>(std::lround(a + (b - a) * f));
  };
  return {mix(kStops[i].r, kStops[i + 1].r), mix(kStops[i].g, kStops[i + 1].g), mix(kStops[i].b, kStops[i + 1].b)};
}

/// Black or white, whichever reads better on background c (Rec. 601 luma).
inline Rgb text_colour_on(Rgb c) { return 0.299 * c.r + 0.587 * c.g + 0.114 * c.b > 128 ? kBlack : kWhite; }

}  // namespace loom::report
