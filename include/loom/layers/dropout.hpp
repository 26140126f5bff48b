#pragma once
// Dropout (Keras: Dropout(rate)), inverted: in Mode::Training, forward keeps
// each element with probability 1 - rate and scales it by 1 / (1 - rate), and
// sets the others to 0; backward applies the same mask and scale to dy. In
// Mode::Inference, and in infer, it is the identity (a bitwise copy), so
// nothing needs rescaling at prediction time. Rate 0 is the identity in both
// modes and draws nothing.
//
// Randomness. The layer owns a Random, seeded in build from the model's
// generator, so the model's seed fixes every mask; generator() returns it
// (the gradient checker replays it). Each training forward takes one number
// from it, the batch's base; elements are drawn in for_blocks' fixed blocks
// (parallel.hpp), each block from a generator of its own seeded with the base
// plus the block's first index (splitmix64 spreads neighbouring seeds over
// unrelated states). The mask therefore depends on the seed, the number of
// training forwards and for_blocks' block size, never on the thread count,
// and blocks draw in parallel. Checkpoints keep the generator's state, so a
// resumed fit draws the masks an uninterrupted one would; model files do not
// (a loaded model is for predicting, or trains on with masks of its own).
//
// Resolution. Each 64-bit draw gives four 16-bit numbers u, one per element;
// an element is dropped when u < round(rate * 2^16). The drop probability is
// rate rounded to a multiple of 2^-16 (1.5e-5; exact for 0.5, 0.25, ...), and
// at most 1 - 2^-16 so that some elements survive any rate below 1; the
// scale stays 1 / (1 - rate) as in Keras, so the expected output is within
// 2^-17 / (1 - rate) of x, relatively (for rates up to 1 - 2^-17). 16-bit
// numbers were about 1.8 times as fast to draw as 32-bit ones (a throwaway
// loop over blocks of 16,384 floats, on a busy machine).
//
// Thread safety: as every Layer (layer.hpp): infer from many threads, forward/backward from one.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>

#include "loom/io/layer_config.hpp"
#include "loom/layer.hpp"
#include "loom/parallel.hpp"
#include "loom/random.hpp"

namespace loom {

class Dropout final : public Layer {
 public:
  static constexpr std::string_view kKind = "Dropout";

  /// rate: the fraction of elements dropped in training, in [0, 1).
  explicit Dropout(float rate)
      : rate_(checked(rate)),
        threshold_(static_cast<std::uint32_t>(std::min(std::lround(static_cast<double>(rate) * kLevels), kLevels - 1))),
        scale_(static_cast<float>(1.0 / (1.0 - static_cast<double>(rate)))) {}

  std::string_view kind() const override { return kKind; }
  std::string_view name_stem() const override { return "dropout"; }
  float rate() const { return rate_; }

  void write_config(LayerConfigWriter& w) const override { w.put_f32(rate_); }
  static std::unique_ptr<Layer> from_config(LayerConfigReader& r) {
    return std::make_unique<Dropout>(r.get_f32("Dropout rate"));
  }

  Shape build(const Shape& input, Random& rng) override {
    generator_.reseed(rng.next());
    return set_shapes(input, input);
  }

  Random* generator() override { return &generator_; }

  const Tensor& forward(const Tensor& x) override {
    masked_ = mode() == Mode::Training && rate_ > 0.0f;
    if (!masked_) {
      infer(x, y_);
      return y_;
    }
    check_input(x);
    resize_like(y_, x);
    resize_like(mask_, x);
    const std::uint64_t base = generator_.next();
    for_blocks(x.size(), [&](Index begin, Index len) {
      Random block(base + static_cast<std::uint64_t>(begin));
      draw_mask(block, mask_.data() + begin, len);
      multiply(x.data() + begin, mask_.data() + begin, y_.data() + begin, len);
    });
    return y_;
  }

  const Tensor& backward(const Tensor& dy) override {
    resize_like(dx_, dy);
    if (!masked_) {
      std::copy_n(dy.data(), dy.size(), dx_.data());
      return dx_;
    }
    if (dy.dimensions() != mask_.dimensions())
      throw ShapeError(label() + ": backward got dy of dimensions " + dims_string(dy) + " for a forward of " +
                       dims_string(mask_));
    for_blocks(dy.size(), [&](Index begin, Index len) {
      multiply(dy.data() + begin, mask_.data() + begin, dx_.data() + begin, len);
    });
    return dx_;
  }

  void infer(const Tensor& x, Tensor& y) const override {
    check_input(x);
    resize_like(y, x);
    std::copy_n(x.data(), x.size(), y.data());
  }

 private:
  static constexpr long kLevels = 1L << 16;  // the drop probability's resolution: 2^-16

  static float checked(float rate) {
    if (!(rate >= 0.0f && rate < 1.0f))  // NaN fails too
      throw UsageError("Dropout: rate must be in [0, 1) (the fraction of inputs dropped in training), got " +
                       detail::option_value_text(rate));
    return rate;
  }

  // mask[0, len) = scale (kept) or 0 (dropped), four elements per 64-bit draw.
  // The numbers go through a small buffer so the compares vectorise.
  void draw_mask(Random& g, float* mask, Index len) const {
    constexpr Index kChunk = 256;
    std::uint16_t u[kChunk];
    const std::uint32_t threshold = threshold_;
    const float scale = scale_;
    for (Index at = 0; at < len; at += kChunk) {
      const Index n = std::min(kChunk, len - at);
      for (Index j = 0; j < n; j += 4) {
        const std::uint64_t bits = g.next();
        for (int k = 0; k < 4; ++k) u[j + k] = static_cast<std::uint16_t>(bits >> (16 * k));
      }
      for (Index j = 0; j < n; ++j) mask[at + j] = u[j] >= threshold ? scale : 0.0f;
    }
  }

  // out = in * mask: forward's y from x, backward's dx from dy.
  static void multiply(const float* in, const float* mask, float* out, Index len) {
    ArrayMap(out, len) = ConstArrayMap(in, len) * ConstArrayMap(mask, len);
  }

  float rate_;
  std::uint32_t threshold_;  // dropped when a 16-bit draw is below it
  float scale_;              // 1 / (1 - rate)
  Random generator_;
  bool masked_ = false;      // whether the last forward applied mask_
  Tensor mask_;              // (N, ...) scale or 0 per element, of the last training forward
  Tensor y_;                 // (N, ...)
  Tensor dx_;                // (N, ...)
};

}  // namespace loom
