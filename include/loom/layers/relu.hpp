#pragma once
// ReLU as a standalone layer: y = max(x, 0). The same code as
// `activation = Activation::ReLU` on Conv2D and Dense (see activation.hpp).
// When the layer before it applies the ReLU itself while training (a fused
// BatchNormalization: chain::fuse_relus), this one passes the values on:
// forward returns its input, backward dy, both already rectified or masked.
// infer always applies the ReLU.
//
// Thread safety: as every Layer (layer.hpp): infer from many threads, forward/backward from one.

#include "loom/activation.hpp"
#include "loom/io/layer_config.hpp"
#include "loom/layer.hpp"

namespace loom {

class ReLU final : public Layer {
 public:
  static constexpr std::string_view kKind = "ReLU";
  std::string_view kind() const override { return kKind; }
  static std::unique_ptr<Layer> from_config(LayerConfigReader&) { return std::make_unique<ReLU>(); }
  std::string_view name_stem() const override { return "re_lu"; }

  Shape build(const Shape& input, Random&) override { return set_shapes(input, input); }

  /// The layer before applies the ReLU in training (set by chain::fuse_relus, never by hand).
  void set_input_rectified(bool rectified) { input_rectified_ = rectified; }
  bool input_rectified() const { return input_rectified_; }

  const Tensor& forward(const Tensor& x) override {
    if (input_rectified_) {
      check_input(x);
      return x;  // valid while the layer before keeps its output, as a chain does until its next forward
    }
    infer(x, y_);
    return y_;
  }
  const Tensor& backward(const Tensor& dy) override {
    if (input_rectified_) return dy;  // the layer before masks it
    activate_backward(Activation::ReLU, y_, dy, dx_);
    return dx_;
  }
  void infer(const Tensor& x, Tensor& y) const override {
    check_input(x);
    activate(Activation::ReLU, x, y);
  }

 private:
  bool input_rectified_ = false;
  Tensor y_;   // (N, ...) output of the last forward
  Tensor dx_;  // (N, ...)
};

}  // namespace loom
