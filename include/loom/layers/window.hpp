#pragma once
// Sliding-window geometry shared by Conv2D and the pooling layers (pooling2d.hpp), with Keras/TensorFlow
// padding rules:
//   valid: out = floor((in - k) / s) + 1, no padding (in >= k required)
//   same:  out = ceil(in / s), total padding max((out - 1) s + k - in, 0),
//          split with the smaller half before (top/left), as TensorFlow does.
//
// Thread safety: plain values and pure functions; safe from many threads.

#include <string>
#include <string_view>

#include "loom/tensor.hpp"

namespace loom {

enum class Padding { Valid, Same };

inline std::string_view to_string(Padding p) { return p == Padding::Valid ? "valid" : "same"; }

/// A pair of sizes (height, width); a single number means a square.
struct Size2 {
  Index h = 0, w = 0;
  Size2() = default;
  Size2(Index s) : h(s), w(s) {}  // NOLINT: implicit, so `.kernel = 3` reads like Keras
  Size2(Index h_, Index w_) : h(h_), w(w_) {}
  bool operator==(const Size2&) const = default;
  std::string to_string() const { return "(" + std::to_string(h) + ", " + std::to_string(w) + ")"; }
};

/// One axis of a window: output length and padding before the first input.
struct WindowAxis {
  Index out = 0;
  Index pad_before = 0;
};

/// Returns out <= 0 when a valid window does not fit; the caller reports it.
inline WindowAxis window_axis(Index in, Index k, Index stride, Padding p) {
  if (p == Padding::Valid) return {in >= k ? (in - k) / stride + 1 : 0, 0};
  const Index out = (in + stride - 1) / stride;
  const Index total = std::max<Index>((out - 1) * stride + k - in, 0);
  return {out, total / 2};
}

/// Both axes of a window over (H, W); kernel and strides stay in the layer's options.
struct Window {
  WindowAxis y, x;
};

}  // namespace loom
