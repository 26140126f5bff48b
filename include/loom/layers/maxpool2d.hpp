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
// Fusion: in training, a Conv2D with ReLU right before a 2x2 pool computes
// both (chain::fuse_max_pools; the direct and Winograd algorithms'
// forward_pooled) with this layer's kernels and results; this layer then
// passes values through.
//
// Thread safety: as every Layer (layer.hpp): infer from many threads, forward/backward from one.

#include <algorithm>
#include <bit>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "loom/layers/maxpool_halves.hpp"
#include "loom/layers/pooling2d.hpp"
#include "loom/parallel.hpp"

namespace loom {

using MaxPool2DOptions = Pooling2DOptions;

class MaxPool2D final : public Pooling2D {
 public:
  explicit MaxPool2D(MaxPool2DOptions o = {}) : Pooling2D("MaxPool2D", o) {}

  static constexpr std::string_view kKind = "MaxPooling2D";
  std::string_view kind() const override { return kKind; }
  std::string_view name_stem() const override { return "max_pooling2d"; }
  static std::unique_ptr<Layer> from_config(LayerConfigReader& r) { return read_config<MaxPool2D>(r); }

  /// Whether every window is 2x2 at stride 2 inside the input: a pool that
  /// the layer before may compute in training (chain::fuse_max_pools).
  bool pools_halves() const { return built() && halves_input(); }

  /// The layer before may pool for this one in training (set by
  /// chain::fuse_max_pools, never by hand): forward then passes on an input
  /// that comes pooled (of this layer's output shape), and the backward of
  /// such a forward passes dy on. Whether it comes pooled is the layer
  /// before's choice at each forward (Conv2D pools with its direct and Winograd algorithms only).
  void set_input_may_be_pooled(bool may) { input_may_be_pooled_ = may; }
  bool input_may_be_pooled() const { return input_may_be_pooled_; }
  /// Whether the last forward's input came pooled (and was passed on).
  bool last_input_came_pooled() const { return passed_on_; }

  const Tensor& forward(const Tensor& x) override {
    passed_on_ = input_may_be_pooled_ && holds(x, output_shape());
    if (passed_on_) return x;  // valid while the layer before keeps its output, as a chain does until its next forward
    check_input(x);
    resize_batch(y_, x.dimension(0), output_shape());
    winner_.resize(static_cast<std::size_t>(y_.size()));
    pool_impl<true>(x, y_, winner_.data());
    return y_;
  }

  const Tensor& backward(const Tensor& dy) override {
    if (passed_on_) return dy;  // the layer before pooled: it takes dy as the pool's
    const Index n = dy.dimension(0), per_in = input_shape().size(), c = input_shape()[2];
    resize_batch(dx_, n, input_shape());
    const float* g = dy.data();
    float* dx = dx_.data();
    const std::int32_t* won = winner_.data();
    const bool assign = tiles_input();  // every input under exactly one tap: assign, no zeroing pass
    const bool halves = halves_input();
    parallel_for(n, true, [&](Index s) {  // a sample's winners lie in its own part of dx, written by the same thread
      if (!assign) std::fill_n(dx + s * per_in, per_in, 0.0f);
      if (halves) {
        const Index per_out = output_shape().size();
        maxpool_halves::route_halves(dx + s * per_in, g + s * per_out, won + s * per_out, window().y.out,
                                     window().x.out, input_shape()[1], c);
        return;
      }
      for_each_tap(s, [&](Index out, Index at, std::int32_t tap) {
        if (assign)
          route_where_won<true>(dx + at, g + out, won + out, tap, c);
        else
          route_where_won<false>(dx + at, g + out, won + out, tap, c);
      });
    });
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
    if (maxpool_halves::pool_halves_supported && halves_input()) {
      const Index per_in = input_shape().size(), per_out = output_shape().size();
      parallel_for(n, true, [&](Index s) {
        std::int32_t* won = kTrack ? winner + s * per_out : nullptr;
        maxpool_halves::pool_halves<kTrack>(src + s * per_in, dst + s * per_out, won, window().y.out, window().x.out,
                                            input_shape()[1], c);
      });
      return;
    }
    parallel_for(n, true, [&](Index s) {
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
    });
  }

  // Whether every window is 2x2 at stride 2 and lies inside the input (no
  // padding; an odd last row or column left out): the pools of the seed model
  // and of every suite model. They go a window at a time (maxpool_halves.hpp):
  // backward, the seed's first pool at batch 32 took 75 -> 49 us, its second
  // 22 -> 18; forward (with AVX-512) 113 -> 40 us and 27 -> 12 us
  // (loom_bench --threads=2 layer/pool, old and new binaries alternating).
  bool halves_input() const {
    const auto& o = options();
    return o.pool.h == 2 && o.pool.w == 2 && o.strides.h == 2 && o.strides.w == 2 && window().y.pad_before == 0 &&
           window().x.pad_before == 0 && 2 * window().y.out <= input_shape()[0] &&
           2 * window().x.out <= input_shape()[1];
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

  // best = max(best, v) per channel, std::max's (best < v ? v : best): a NaN
  // in v is ignored, as when training. __restrict lets g++ vectorise the
  // loop in place (an Eigen array expression did too, but its call and tail
  // handling cost more than the work at 32 or 64 channels: a third of a
  // one-image pool).
  static void max_into(float* __restrict best, const float* __restrict v, Index c) {
    for (Index ch = 0; ch < c; ++ch) best[ch] = best[ch] < v[ch] ? v[ch] : best[ch];
  }

  bool input_may_be_pooled_ = false;
  bool passed_on_ = false;    // the last forward's input came pooled
  Tensor y_;                  // (N, OH, OW, C)
  std::vector<std::int32_t> winner_;  // (N, OH, OW, C) winning taps
  Tensor dx_;                 // (N, H, W, C)
};

}  // namespace loom
