#pragma once
// One sample (H, W, C) seen through a shifted window, optionally mirrored
// left-right: the index arithmetic of random crops (augmentation.hpp) and of
// flip test-time augmentation (Sequential::predict), written once.
//
//   dst(y, x, c) = src(y + dy, x' + dx, c), x' = mirror ? W - 1 - x : x,
//                  and 0 where that falls outside the sample (zero padding).
//
// A crop of an image zero-padded by P at offset (oy, ox) is dy = oy - P, dx = ox - P.
//
// Thread safety: a pure function of its arguments; safe from many threads.

#include <algorithm>

#include "loom/tensor.hpp"

namespace loom {

inline void copy_window(const float* src, float* dst, Index h, Index w, Index c, Index dy, Index dx, bool mirror) {
  // The columns x whose source column falls inside the sample: [lo, hi); zeros either side.
  const Index lo = std::clamp<Index>(mirror ? dx : -dx, 0, w), hi = std::clamp<Index>(mirror ? w + dx : w - dx, lo, w);
  for (Index y = 0; y < h; ++y) {
    float* row = dst + y * w * c;
    const Index sy = y + dy;
    if (sy < 0 || sy >= h) {
      std::fill_n(row, w * c, 0.0f);
      continue;
    }
    const float* src_row = src + sy * w * c;
    std::fill_n(row, lo * c, 0.0f);
    if (!mirror) std::copy_n(src_row + (lo + dx) * c, (hi - lo) * c, row + lo * c);  // one run: memcpy
    else
      for (Index x = lo; x < hi; ++x) std::copy_n(src_row + (w - 1 - x + dx) * c, c, row + x * c);
    std::fill_n(row + hi * c, (w - hi) * c, 0.0f);
  }
}

/// out (N, H, W, C) = every sample of x (N, H, W, C) mirrored left-right.
inline void mirror_samples(const Tensor& x, Tensor& out) {
  const Index n = x.dimension(0), h = x.dimension(1), w = x.dimension(2), c = x.dimension(3), per = h * w * c;
  resize_like(out, x);
  for (Index i = 0; i < n; ++i) copy_window(x.data() + i * per, out.data() + i * per, h, w, c, 0, 0, true);
}

}  // namespace loom
