#pragma once
// MaxPool2D: the maximum of each window, channel by channel, over NHWC.
//
//   x      (N, H, W, C)
//   y      (N, OH, OW, C)   y = max over the (PH, PW) window
//   argmax (N, OH, OW, C)   flat index into x of each maximum (training only)
//
// Backward: the gradient of a max flows only to the input that won, so
//   dx[argmax[i]] += dy[i]   (+= because overlapping windows can share a winner)
// Padded positions never win (same padding pads with -infinity, as TensorFlow).
// Ties go to the first maximum in (ky, kx) order.
//
// Thread safety: as every Layer (layer.hpp): infer from many threads, forward/backward from one.

#include <algorithm>
#include <limits>
#include <string>
#include <vector>

#include "loom/layer.hpp"
#include "loom/layers/window.hpp"

namespace loom {

struct MaxPool2DOptions {
  Size2 pool = 2;
  Size2 strides = 0;  // 0: the pool size, as Keras
  Padding padding = Padding::Valid;
};

class MaxPool2D final : public Layer {
 public:
  explicit MaxPool2D(MaxPool2DOptions o = {}) : o_(o) {
    if (o_.strides.h == 0 && o_.strides.w == 0) o_.strides = o_.pool;
    if (o_.pool.h <= 0 || o_.pool.w <= 0)
      throw UsageError("MaxPool2D: pool size must be positive, got " + o_.pool.to_string());
    if (o_.strides.h <= 0 || o_.strides.w <= 0)
      throw UsageError("MaxPool2D: strides must be positive, got " + o_.strides.to_string());
  }

  std::string_view kind() const override { return "MaxPooling2D"; }
  std::string_view name_stem() const override { return "max_pooling2d"; }
  const MaxPool2DOptions& options() const { return o_; }

  Shape build(const Shape& input, Random&) override {
    if (input.rank() != 3)
      throw ShapeError(label() + ": expects images (height, width, channels), got " + input.to_string());
    win_ = {window_axis(input[0], o_.pool.h, o_.strides.h, o_.padding),
            window_axis(input[1], o_.pool.w, o_.strides.w, o_.padding)};
    if (win_.y.out <= 0 || win_.x.out <= 0)
      throw ShapeError(label() + ": pool " + o_.pool.to_string() + " does not fit input " + input.to_string() +
                       " with valid padding");
    return set_shapes(input, Shape{win_.y.out, win_.x.out, input[2]});
  }

  const Tensor& forward(const Tensor& x) override {
    check_input(x);
    resize_batch(y_, x.dimension(0), output_shape());
    argmax_.resize(static_cast<std::size_t>(y_.size()));
    pool(x, y_, argmax_.data());
    return y_;
  }

  const Tensor& backward(const Tensor& dy) override {
    const Index n = dy.dimension(0), per_out = output_shape().size(), per_in = input_shape().size();
    resize_batch(dx_, n, input_shape());
    const float* g = dy.data();
    float* dx = dx_.data();
    const Index* arg = argmax_.data();
#pragma omp parallel for schedule(static) if (n > 1)
    for (Index s = 0; s < n; ++s) {  // a sample's winners lie in its own part of dx, zeroed by the same thread
      std::fill_n(dx + s * per_in, per_in, 0.0f);
      for (Index i = s * per_out; i < (s + 1) * per_out; ++i) dx[arg[i]] += g[i];
    }
    return dx_;
  }

  void infer(const Tensor& x, Tensor& y) const override {
    check_input(x);
    resize_batch(y, x.dimension(0), output_shape());
    pool(x, y, nullptr);
  }

 private:
  // y = max over windows; writes winners' flat indices into argmax when given.
  // The innermost loop runs over channels, contiguous in NHWC, so it vectorises.
  void pool(const Tensor& x, Tensor& y, Index* argmax) const {
    if (argmax)
      pool_impl<true>(x, y, argmax);
    else
      pool_impl<false>(x, y, nullptr);
  }

  template <bool kArgmax>
  void pool_impl(const Tensor& x, Tensor& y, Index* argmax) const {
    const Index n = x.dimension(0), h = input_shape()[0], w = input_shape()[1], c = input_shape()[2];
    const Index oh = win_.y.out, ow = win_.x.out;
    const float* src = x.data();
    float* dst = y.data();
#pragma omp parallel for schedule(static) if (n > 1)
    for (Index s = 0; s < n; ++s)
      for (Index oy = 0; oy < oh; ++oy)
        for (Index ox = 0; ox < ow; ++ox) {
          const Index out = ((s * oh + oy) * ow + ox) * c;
          float* best = dst + out;
          [[maybe_unused]] Index* best_at = kArgmax ? argmax + out : nullptr;
          bool first = true;  // valid padding always has a first tap; same padding too (pad < pool)
          for (Index ky = 0; ky < o_.pool.h; ++ky) {
            const Index iy = oy * o_.strides.h + ky - win_.y.pad_before;
            if (iy < 0 || iy >= h) continue;
            for (Index kx = 0; kx < o_.pool.w; ++kx) {
              const Index ix = ox * o_.strides.w + kx - win_.x.pad_before;
              if (ix < 0 || ix >= w) continue;
              const Index at = ((s * h + iy) * w + ix) * c;
              const float* v = src + at;
              if (first) {
                Eigen::Map<Eigen::ArrayXf>(best, c) = Eigen::Map<const Eigen::ArrayXf>(v, c);
                if constexpr (kArgmax)
                  for (Index ch = 0; ch < c; ++ch) best_at[ch] = at + ch;
                first = false;
                continue;
              }
              if constexpr (kArgmax) {
                for (Index ch = 0; ch < c; ++ch)
                  if (v[ch] > best[ch]) {
                    best[ch] = v[ch];
                    best_at[ch] = at + ch;
                  }
              } else {
                max_into(best, v, c);
              }
            }
          }
        }
  }

  // best = max(best, v) per channel as an Eigen array expression, which is
  // vectorised (g++ left the plain loop scalar). Eigen's max(a, b) is
  // std::max's (a < b ? b : a): a NaN in v is ignored, as in the argmax path.
  static void max_into(float* best, const float* v, Index c) {
    Eigen::Map<Eigen::ArrayXf> b(best, c);
    b = b.max(Eigen::Map<const Eigen::ArrayXf>(v, c));
  }

  MaxPool2DOptions o_;
  Window win_;
  Tensor y_;                  // (N, OH, OW, C)
  std::vector<Index> argmax_;  // (N, OH, OW, C) flat indices into x
  Tensor dx_;                 // (N, H, W, C)
};

}  // namespace loom
