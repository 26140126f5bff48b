#pragma once
// LeakyReLU (Keras: LeakyReLU(negative_slope), formerly alpha; default 0.3):
// y = x where x > 0, alpha x elsewhere; dx = dy where x > 0, alpha dy
// elsewhere (at 0 the slope is alpha, as TensorFlow's gradient).
//
// alpha must be finite and not negative (Keras documents its slope as a
// float >= 0): then y > 0 exactly when x > 0, so backward reads the sign
// from the output it keeps anyway and needs no copy of the input. alpha = 0
// is ReLU; alpha > 1 is allowed, as in Keras.
//
// Thread safety: as every Layer (layer.hpp): infer from many threads, forward/backward from one.

#include <cmath>
#include <string>

#include "loom/io/layer_config.hpp"
#include "loom/layer.hpp"
#include "loom/parallel.hpp"

namespace loom {

class LeakyReLU final : public Layer {
 public:
  static constexpr std::string_view kKind = "LeakyReLU";

  explicit LeakyReLU(float alpha = 0.3f) : alpha_(alpha) {
    if (!(std::isfinite(alpha) && alpha >= 0.0f))
      throw UsageError("LeakyReLU: alpha (the slope for inputs below 0) must be finite and not negative, got " +
                       detail::option_value_text(alpha));
  }

  std::string_view kind() const override { return kKind; }
  std::string_view name_stem() const override { return "leaky_re_lu"; }
  float alpha() const { return alpha_; }

  void write_config(LayerConfigWriter& w) const override { w.put_f32(alpha_); }
  static std::unique_ptr<Layer> from_config(LayerConfigReader& r) {
    return std::make_unique<LeakyReLU>(r.get_f32("LeakyReLU alpha"));
  }

  Shape build(const Shape& input, Random&) override { return set_shapes(input, input); }

  const Tensor& forward(const Tensor& x) override {
    infer(x, y_);
    return y_;
  }
  const Tensor& backward(const Tensor& dy) override {
    if (dy.dimensions() != y_.dimensions())
      throw ShapeError(label() + ": backward got dy of dimensions " + dims_string(dy) + " for a forward of " +
                       dims_string(y_));
    resize_like(dx_, dy);
    leaky(y_, dy, dx_);
    return dx_;
  }
  void infer(const Tensor& x, Tensor& y) const override {
    check_input(x);
    resize_like(y, x);
    leaky(x, x, y);
  }

 private:
  // out = v where sign > 0, alpha v elsewhere: forward is leaky(x, x, y),
  // backward leaky(y, dy, dx). One select per element in fixed blocks
  // (Eigen's select vectorises to a compare and a blend).
  void leaky(const Tensor& sign, const Tensor& v, Tensor& out) const {
    const float alpha = alpha_;
    for_blocks(v.size(), [&](Index i, Index len) {
      const ConstArrayMap vi(v.data() + i, len);
      ArrayMap(out.data() + i, len) = (ConstArrayMap(sign.data() + i, len) > 0.0f).select(vi, vi * alpha);
    });
  }

  float alpha_;
  Tensor y_;   // (N, ...) output of the last forward: its sign is the input's
  Tensor dx_;  // (N, ...)
};

}  // namespace loom
