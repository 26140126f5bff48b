#pragma once
// Activation functions, shared by the standalone ReLU and Softmax layers and
// by the `activation` option of Conv2D and Dense, so there is one
// implementation of each. Softmax runs over the last axis (channels), as Keras.
//
// Thread safety: pure functions of their arguments; safe from many threads.

#include <algorithm>
#include <cmath>
#include <string_view>

#include "loom/parallel.hpp"
#include "loom/tensor.hpp"

namespace loom {

enum class Activation { None, ReLU, Softmax };

inline std::string_view to_string(Activation a) {
  switch (a) {
    case Activation::None: return "linear";
    case Activation::ReLU: return "relu";
    case Activation::Softmax: return "softmax";
  }
  return "?";
}

namespace activation {

// y = max(z, 0) on n values, on the calling thread (y may alias z): the one
// ReLU, which every layer that applies one calls.
inline void relu_serial(const float* z, float* y, Index n) { ArrayMap(y, n) = ConstArrayMap(z, n).max(0.0f); }

// y = max(z, 0), elementwise, on every thread. In place is allowed (y may alias z).
inline void relu_forward(const float* z, float* y, Index n) {
  for_blocks(n, [&](Index i, Index len) { relu_serial(z + i, y + i, len); });
}

// dz = dy where y > 0, else 0 (the derivative at 0 is taken as 0, as Keras).
inline void relu_backward(const float* y, const float* dy, float* dz, Index n) {
  for_blocks(n, [&](Index i, Index len) {
    ArrayMap(dz + i, len) = (ConstArrayMap(y + i, len) > 0.0f).select(ConstArrayMap(dy + i, len), 0.0f);
  });
}

// Each row of the (rows, cols) matrix z becomes softmax(row), computed as
// exp(z - max) / sum so no exponent overflows.
inline void softmax_forward(const float* z, float* y, Index rows, Index cols) {
  for (Index r = 0; r < rows; ++r) {
    const float* zr = z + r * cols;
    float* yr = y + r * cols;
    const float m = *std::max_element(zr, zr + cols);
    float sum = 0.0f;
    for (Index c = 0; c < cols; ++c) sum += (yr[c] = std::exp(zr[c] - m));
    const float inv = 1.0f / sum;
    for (Index c = 0; c < cols; ++c) yr[c] *= inv;
  }
}

// Softmax Jacobian-vector product per row: dz_i = y_i (dy_i - sum_j y_j dy_j).
inline void softmax_backward(const float* y, const float* dy, float* dz, Index rows, Index cols) {
  for (Index r = 0; r < rows; ++r) {
    const float* yr = y + r * cols;
    const float* dyr = dy + r * cols;
    float* dzr = dz + r * cols;
    float dot = 0.0f;
    for (Index c = 0; c < cols; ++c) dot += yr[c] * dyr[c];
    for (Index c = 0; c < cols; ++c) dzr[c] = yr[c] * (dyr[c] - dot);
  }
}

}  // namespace activation

/// Applies `a` to the pre-activation z, writing y (same dimensions; y may be z
/// for ReLU and None). Channels are the last axis.
inline void activate(Activation a, const Tensor& z, Tensor& y) {
  resize_like(y, z);
  const Index n = z.size(), cols = z.dimension(3);
  switch (a) {
    case Activation::None:
      if (&y != &z) y = z;
      break;
    case Activation::ReLU: activation::relu_forward(z.data(), y.data(), n); break;
    case Activation::Softmax: activation::softmax_forward(z.data(), y.data(), n / cols, cols); break;
  }
}

/// Given y = a(z) and dy = dL/dy, writes dz = dL/dz (dz may alias dy).
inline void activate_backward(Activation a, const Tensor& y, const Tensor& dy, Tensor& dz) {
  resize_like(dz, dy);
  const Index n = y.size(), cols = y.dimension(3);
  switch (a) {
    case Activation::None:
      if (&dz != &dy) dz = dy;
      break;
    case Activation::ReLU: activation::relu_backward(y.data(), dy.data(), dz.data(), n); break;
    case Activation::Softmax: activation::softmax_backward(y.data(), dy.data(), dz.data(), n / cols, cols); break;
  }
}

}  // namespace loom
