#pragma once
// Softmax as a standalone layer, over the last axis (channels), as Keras.
// The same code as `activation = Activation::Softmax` on Conv2D and Dense.
// As the last layer it hands the loss its input as logits, so the loss can
// use the stable fused gradient; backward_from_logits then passes dL/dz on.
//
// Thread safety: as every Layer (layer.hpp): infer from many threads, forward/backward from one.

#include "loom/activation.hpp"
#include "loom/io/layer_config.hpp"
#include "loom/layer.hpp"

namespace loom {

class Softmax final : public Layer {
 public:
  static constexpr std::string_view kKind = "Softmax";
  std::string_view kind() const override { return kKind; }
  static std::unique_ptr<Layer> from_config(LayerConfigReader&) { return std::make_unique<Softmax>(); }
  std::string_view name_stem() const override { return "softmax"; }

  Shape build(const Shape& input, Random&) override { return set_shapes(input, input); }

  const Tensor& forward(const Tensor& x) override {
    z_ = x;  // the logits, for the fused loss
    infer(x, y_);
    return y_;
  }
  const Tensor& backward(const Tensor& dy) override {
    activate_backward(Activation::Softmax, y_, dy, dx_);
    return dx_;
  }
  void infer(const Tensor& x, Tensor& y) const override {
    check_input(x);
    activate(Activation::Softmax, x, y);
  }

  bool ends_with_softmax() const override { return true; }
  const Tensor& logits() const override { return z_; }
  const Tensor& backward_from_logits(const Tensor& dz) override { return dz; }

 private:
  Tensor z_;   // (N, ...) input of the last forward
  Tensor y_;   // (N, ...) probabilities
  Tensor dx_;  // (N, ...)
};

}  // namespace loom
