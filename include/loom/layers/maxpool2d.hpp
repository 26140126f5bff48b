#pragma once
// MaxPool2D: the maximum of each window, channel by channel, over NHWC.
//
//   x      (N, H, W, C)
//   y      (N, OH, OW, C)   y = max over the (PH, PW) window
//   winner (N, OH, OW, C)   the window tap (ky * PW + kx) that holds each maximum (training only)
//
// Backward: the gradient of a max flows only to the input that won, so
//   dx[input under tap winner[i] of window i] += dy[i]
// (+= because overlapping windows can share a winner). Keeping the tap rather
// than a flat index into x makes both passes plain channel loops with a
// select, which vectorise: the flat-index version took 657 us for the seed's
// first pool at batch 32 (loom_bench layer/pool1/forward).
// Padded positions never win (same padding pads with -infinity, as TensorFlow).
// Ties go to the first maximum in (ky, kx) order.
//
// Thread safety: as every Layer (layer.hpp): infer from many threads, forward/backward from one.

#include <algorithm>
#include <bit>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "loom/io/layer_config.hpp"
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

  static constexpr std::string_view kKind = "MaxPooling2D";
  std::string_view kind() const override { return kKind; }
  std::string_view name_stem() const override { return "max_pooling2d"; }
  const MaxPool2DOptions& options() const { return o_; }

  void write_config(LayerConfigWriter& w) const override {
    w.put_size2(o_.pool);
    w.put_size2(o_.strides);
    w.put_padding(o_.padding);
  }
  static std::unique_ptr<Layer> from_config(LayerConfigReader& r) {
    MaxPool2DOptions o;
    o.pool = r.get_size2("MaxPooling2D pool size");
    o.strides = r.get_size2("MaxPooling2D strides");
    o.padding = r.get_padding("MaxPooling2D padding");
    return std::make_unique<MaxPool2D>(o);
  }

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
    winner_.resize(static_cast<std::size_t>(y_.size()));
    pool_impl<true>(x, y_, winner_.data());
    return y_;
  }

  const Tensor& backward(const Tensor& dy) override {
    const Index n = dy.dimension(0), per_in = input_shape().size(), c = input_shape()[2];
    resize_batch(dx_, n, input_shape());
    const float* g = dy.data();
    float* dx = dx_.data();
    const std::int32_t* won = winner_.data();
    const bool assign = tiles_input();  // every input under exactly one tap: assign, no zeroing pass
#pragma omp parallel for schedule(static) if (n > 1)
    for (Index s = 0; s < n; ++s) {  // a sample's winners lie in its own part of dx, written by the same thread
      if (!assign) std::fill_n(dx + s * per_in, per_in, 0.0f);
      for_each_tap(s, [&](Index out, Index at, std::int32_t tap) {
        if (assign)
          route_where_won<true>(dx + at, g + out, won + out, tap, c);
        else
          route_where_won<false>(dx + at, g + out, won + out, tap, c);
      });
    }
    return dx_;
  }

  void infer(const Tensor& x, Tensor& y) const override {
    check_input(x);
    resize_batch(y, x.dimension(0), output_shape());
    pool_impl<false>(x, y, nullptr);
  }

 private:
  // y = max over windows; records each maximum's tap in winner when kTrack.
  // The innermost loops run over channels, contiguous in NHWC, so they vectorise.
  template <bool kTrack>
  void pool_impl(const Tensor& x, Tensor& y, std::int32_t* winner) const {
    const Index n = x.dimension(0), c = input_shape()[2];
    const float* src = x.data();
    float* dst = y.data();
#pragma omp parallel for schedule(static) if (n > 1)
    for (Index s = 0; s < n; ++s) {
      Index first_of = -1;  // the output element whose first tap was seen
      for_each_tap(s, [&](Index out, Index at, std::int32_t tap) {
        float* best = dst + out;
        const float* v = src + at;
        if (first_of != out) {  // valid padding always has a first tap; same padding too (pad < pool)
          first_of = out;
          std::copy_n(v, c, best);
          if constexpr (kTrack) std::fill_n(winner + out, c, tap);
        } else if constexpr (kTrack) {
          take_if_greater(best, winner + out, v, tap, c);
        } else {
          max_into(best, v, c);
        }
      });
    }
  }

  // fn(output offset, input offset, tap) for every tap inside the input of
  // every window of sample s, window by window, taps in (ky, kx) order.
  // Offsets are of the first channel, into y (N, OH, OW, C) and x (N, H, W, C).
  template <typename Fn>
  void for_each_tap(Index s, Fn&& fn) const {
    const Index h = input_shape()[0], w = input_shape()[1], c = input_shape()[2];
    const Index oh = win_.y.out, ow = win_.x.out;
    for (Index oy = 0; oy < oh; ++oy)
      for (Index ox = 0; ox < ow; ++ox) {
        const Index out = ((s * oh + oy) * ow + ox) * c;
        for (Index ky = 0; ky < o_.pool.h; ++ky) {
          const Index iy = oy * o_.strides.h + ky - win_.y.pad_before;
          if (iy < 0 || iy >= h) continue;
          for (Index kx = 0; kx < o_.pool.w; ++kx) {
            const Index ix = ox * o_.strides.w + kx - win_.x.pad_before;
            if (ix < 0 || ix >= w) continue;
            fn(out, ((s * h + iy) * w + ix) * c, static_cast<std::int32_t>(ky * o_.pool.w + kx));
          }
        }
      }
  }

  // Where v beats best (strictly: ties keep the earlier tap), take v and its
  // tap. Written as arithmetic with unconditional stores: as a conditional
  // store, g++ made it a masked store, which is microcoded and slow on AMD.
  static void take_if_greater(float* __restrict best, std::int32_t* __restrict won, const float* __restrict v,
                              std::int32_t tap, Index c) {
    for (Index ch = 0; ch < c; ++ch) {
      const std::int32_t greater = -static_cast<std::int32_t>(v[ch] > best[ch]);  // all ones or zero
      won[ch] += (tap - won[ch]) & greater;
      best[ch] = std::max(best[ch], v[ch]);  // (best < v ? v : best): the same choice
    }
  }
  // dx = or += (dy where this tap won, else 0). A select by bit mask, not a
  // product: a non-finite dy stays out of the inputs that did not win; and not
  // a `?:`, which g++ made a masked load, as slow as the masked store above.
  template <bool kAssign>
  static void route_where_won(float* __restrict dx, const float* __restrict dy, const std::int32_t* __restrict won,
                              std::int32_t tap, Index c) {
    for (Index ch = 0; ch < c; ++ch) {
      const std::int32_t won_here = -static_cast<std::int32_t>(won[ch] == tap);  // all ones or zero
      const float routed = std::bit_cast<float>(std::bit_cast<std::int32_t>(dy[ch]) & won_here);
      if constexpr (kAssign)
        dx[ch] = routed;
      else
        dx[ch] += routed;
    }
  }

  // Whether the windows cover the input exactly once (stride = pool, no
  // padding, sizes multiples of the pool), as the seed model's 26x26 -> 13x13.
  bool tiles_input() const {
    return o_.strides.h == o_.pool.h && o_.strides.w == o_.pool.w && win_.y.pad_before == 0 &&
           win_.x.pad_before == 0 && win_.y.out * o_.pool.h == input_shape()[0] &&
           win_.x.out * o_.pool.w == input_shape()[1];
  }

  // best = max(best, v) per channel as an Eigen array expression, which is
  // vectorised (g++ left the plain loop scalar). Eigen's max(a, b) is
  // std::max's (a < b ? b : a): a NaN in v is ignored, as when training.
  static void max_into(float* best, const float* v, Index c) {
    Eigen::Map<Eigen::ArrayXf> b(best, c);
    b = b.max(Eigen::Map<const Eigen::ArrayXf>(v, c));
  }

  MaxPool2DOptions o_;
  Window win_;
  Tensor y_;                  // (N, OH, OW, C)
  std::vector<std::int32_t> winner_;  // (N, OH, OW, C) winning taps
  Tensor dx_;                 // (N, H, W, C)
};

}  // namespace loom
