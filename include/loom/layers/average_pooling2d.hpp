#pragma once
// AveragePooling2D: the mean of each window, channel by channel, over NHWC.
//
//   x  (N, H, W, C)
//   y  (N, OH, OW, C)   y = (sum of the window's taps inside x) / (how many there are)
//
// With same padding a border window reaches past the input; as Keras and
// TensorFlow, it averages only the positions inside the input (a 2x2 window
// at a corner of a 3x3 input with one tap inside is that value, not a
// quarter of it). PyTorch's AvgPool2d does this with count_include_pad=False.
//
// Backward: every tap of window i gets dy[i] / count[i], added up where
// windows overlap. The count of each window depends only on its position, so
// it is worked out once, at build. backward_into adds those shares onto the
// caller's dx directly where windows do not overlap (a pooled projection's
// shortcut in a Residual block), the same bits as adding backward's dx.
//
// Thread safety: as every Layer (layer.hpp): infer from many threads, forward/backward from one.

#include <algorithm>
#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include "loom/layers/pooling2d.hpp"
#include "loom/parallel.hpp"

namespace loom {

using AveragePooling2DOptions = Pooling2DOptions;

class AveragePooling2D final : public Pooling2D {
 public:
  explicit AveragePooling2D(AveragePooling2DOptions o = {}) : Pooling2D("AveragePooling2D", o) {}

  static constexpr std::string_view kKind = "AveragePooling2D";
  std::string_view kind() const override { return kKind; }
  std::string_view name_stem() const override { return "average_pooling2d"; }
  static std::unique_ptr<Layer> from_config(LayerConfigReader& r) { return read_config<AveragePooling2D>(r); }

  Shape build(const Shape& input, Random& rng) override {
    const Shape out = Pooling2D::build(input, rng);
    count_.assign(static_cast<std::size_t>(out[0] * out[1]), 0.0f);
    for_each_tap(0, [&](Index at_out, Index, std::int32_t) { count_[static_cast<std::size_t>(at_out / out[2])] += 1.0f; });
    return out;
  }

  const Tensor& forward(const Tensor& x) override {
    infer(x, y_);
    return y_;
  }

  const Tensor& backward(const Tensor& dy) override {
    resize_batch(dx_, dy.dimension(0), input_shape());
    spread_gradient(dy, dx_.data(), GradientWrite::Assign);
    return dx_;
  }

  // As the shortcut of a pooled projection (a Residual's path), the pool adds
  // its dx onto the block's directly instead of writing its own and a pass
  // adding it. Where windows do not overlap each input gets at most one
  // share, so this gives the bits of that pass; overlapping windows keep it.
  void backward_into(const Tensor& dy, Tensor& dx, GradientWrite how) override {
    prepare_gradient_target(dx, dy.dimension(0), input_shape(), how, label());
    if (how == GradientWrite::Add && !windows_disjoint()) return Layer::backward_into(dy, dx, how);
    spread_gradient(dy, dx.data(), how);
  }

  void infer(const Tensor& x, Tensor& y) const override {
    check_input(x);
    resize_batch(y, x.dimension(0), output_shape());
    parallel_for(x.dimension(0), true, [&](Index s) { pool_sample(x.data(), y.data(), s); });
  }

  // ---- by ranges of samples: what a Residual block's pooled projection runs
  // inside the main path's first convolution (residual.hpp), on the thread
  // that has just read (forward) or written (backward) those samples.

  /// forward in parts: begin_forward(x) sizes the output, forward_samples(x,
  /// s0, s1) pools samples [s0, s1) (disjoint ranges, from any threads), and
  /// once every sample is done output() holds forward(x)'s values.
  void begin_forward(const Tensor& x) {
    check_input(x);
    resize_batch(y_, x.dimension(0), output_shape());
  }
  void forward_samples(const Tensor& x, Index s0, Index s1) {
    for (Index s = s0; s < s1; ++s) pool_sample(x.data(), y_.data(), s);
  }
  const Tensor& output() const { return y_; }

  /// backward_into(dy, dx, Add) in parts: begin_spread(dy, dx) checks the
  /// shapes, then spread_samples(dy, dx, s0, s1) adds the shares of samples
  /// [s0, s1) (disjoint ranges, from any threads). Only for disjoint windows,
  /// where each input gets at most one share: backward_into's bits.
  void begin_spread(const Tensor& dy, const Tensor& dx) {
    if (!windows_disjoint()) throw UsageError(label() + ": adding dx by samples needs windows that do not overlap");
    if (dy.dimension(0) != dx.dimension(0) || !holds(dy, output_shape()) || !holds(dx, input_shape()))
      throw ShapeError(label() + ": spreads dy " + dims_string(dy) + " of shape " + output_shape().to_string() +
                       " onto dx " + dims_string(dx) + " of shape " + input_shape().to_string());
    resize_batch(share_, dy.dimension(0), output_shape());
  }
  void spread_samples(const Tensor& dy, Tensor& dx, Index s0, Index s1) {
    for (Index s = s0; s < s1; ++s) spread_sample(dy.data(), dx.data(), s, GradientWrite::Add);
  }

  /// No input position lies under two windows.
  bool windows_disjoint() const {
    return options().strides.h >= options().pool.h && options().strides.w >= options().pool.w;
  }

 private:
  // Sample s's output (OH, OW, C) from its input: each window's first tap
  // copied, the others added in tap order, then divided by the window's count.
  void pool_sample(const float* src, float* dst, Index s) const {
    if (halves()) return pool_halves(src, dst, s);
    const Index c = input_shape()[2], per_out = output_shape().size();
    Index first_of = -1;  // the output element whose first tap was seen
    for_each_tap(s, [&](Index out, Index at, std::int32_t) {
      if (first_of != out) {  // every window has a tap inside the input (pad < pool)
        first_of = out;
        std::copy_n(src + at, c, dst + out);
      } else {
        add_into(dst + out, src + at, c);
      }
    });
    // The sums are in cache still: a division, as TensorFlow's mean, not a
    // product with 1/count, so a hand-worked mean is matched exactly.
    divide_by_count(dst + s * per_out, dst + s * per_out, c);
  }

  // Whether the windows are 2x2, stride 2, and tile the input (a pooled
  // projection's shortcut, 28x28 -> 14x14): then pool_halves and
  // spread_halves walk them directly, the same sums in the same order as the
  // walk over taps, which spent most of its time per tap on the walk itself
  // (the ResNet's first shortcut pool: docs/benchmarks.md, 2026-12-07).
  bool halves() const { return tiles_input() && options().pool.h == 2 && options().pool.w == 2; }

  // Sample s's (OH, OW, C) block of y: each window's four taps summed in
  // (ky, kx) order, then divided by 4, as pool_sample does.
  void pool_halves(const float* src, float* dst, Index s) const {
    const Index w = input_shape()[1], c = input_shape()[2], oh = output_shape()[0], ow = output_shape()[1];
    const float* in = src + s * input_shape().size();
    float* out = dst + s * output_shape().size();
    for (Index oy = 0; oy < oh; ++oy)
      for (Index ox = 0; ox < ow; ++ox, out += c) {
        const float* __restrict t0 = in + (2 * oy * w + 2 * ox) * c;  // taps (0, 0), (0, 1), (1, 0), (1, 1)
        const float* __restrict t1 = t0 + c;
        const float* __restrict t2 = t0 + w * c;
        const float* __restrict t3 = t2 + c;
        float* __restrict o = out;
        for (Index ch = 0; ch < c; ++ch) o[ch] = (((t0[ch] + t1[ch]) + t2[ch]) + t3[ch]) / 4.0f;
      }
  }

  // Sample s's part of spread_gradient for halves(): each window's dy / 4
  // assigned to or added onto its four taps of dx, as spread_sample does.
  void spread_halves(const float* g, float* dx, Index s, GradientWrite how) const {
    const Index w = input_shape()[1], c = input_shape()[2], oh = output_shape()[0], ow = output_shape()[1];
    const float* dy = g + s * output_shape().size();
    float* base = dx + s * input_shape().size();
    for (Index oy = 0; oy < oh; ++oy)
      for (Index ox = 0; ox < ow; ++ox, dy += c) {
        float* __restrict t0 = base + (2 * oy * w + 2 * ox) * c;
        float* __restrict t1 = t0 + c;
        float* __restrict t2 = t0 + w * c;
        float* __restrict t3 = t2 + c;
        const float* __restrict d = dy;
        if (how == GradientWrite::Assign)
          for (Index ch = 0; ch < c; ++ch) t0[ch] = t1[ch] = t2[ch] = t3[ch] = d[ch] / 4.0f;
        else
          for (Index ch = 0; ch < c; ++ch) {
            const float share = d[ch] / 4.0f;
            t0[ch] += share, t1[ch] += share, t2[ch] += share, t3[ch] += share;
          }
      }
  }

  // Every tap of window i gets dy[i] / count[i], assigned to or added onto dx
  // (N, H, W, C). Add requires windows_disjoint().
  void spread_gradient(const Tensor& dy, float* dx, GradientWrite how) {
    resize_batch(share_, dy.dimension(0), output_shape());
    // a sample's windows lie in its own part of dx, written by the same thread
    parallel_for(dy.dimension(0), true, [&](Index s) { spread_sample(dy.data(), dx, s, how); });
  }
  // Sample s's part of spread_gradient, through share_ (sized for dy).
  void spread_sample(const float* g, float* dx, Index s, GradientWrite how) {
    if (halves()) return spread_halves(g, dx, s, how);
    const Index c = input_shape()[2], per_in = input_shape().size(), per_out = output_shape().size();
    float* share = share_.data();
    // Assigning where every input is under exactly one tap needs no zeroing pass.
    const bool copy = how == GradientWrite::Assign && tiles_input();
    divide_by_count(g + s * per_out, share + s * per_out, c);
    if (how == GradientWrite::Assign && !copy) std::fill_n(dx + s * per_in, per_in, 0.0f);
    for_each_tap(s, [&](Index out, Index at, std::int32_t) {
      if (copy)
        std::copy_n(share + out, c, dx + at);
      else
        add_into(dx + at, share + out, c);
    });
  }

  // to = from / count of its window, for one sample's (OH, OW, C) block; to may be from.
  void divide_by_count(const float* from, float* to, Index c) const {
    for (std::size_t p = 0; p < count_.size(); ++p) {
      const float k = count_[p];
      const float* f = from + static_cast<Index>(p) * c;
      float* t = to + static_cast<Index>(p) * c;
      for (Index ch = 0; ch < c; ++ch) t[ch] = f[ch] / k;
    }
  }

  static void add_into(float* __restrict sum, const float* __restrict v, Index c) {
    for (Index ch = 0; ch < c; ++ch) sum[ch] += v[ch];
  }

  std::vector<float> count_;  // (OH, OW): taps of each window inside the input
  Tensor y_;                  // (N, OH, OW, C)
  Tensor share_;              // (N, OH, OW, C): dy / count, what each tap of a window gets
  Tensor dx_;                 // (N, H, W, C)
};

}  // namespace loom
