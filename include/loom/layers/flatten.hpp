#pragma once
// Flatten: (N, H, W, C) -> (N, H*W*C), in row-major (h, w, c) order as Keras
// with channels-last data. Backward reshapes the gradient back.
//
// Thread safety: as every Layer (layer.hpp): infer from many threads, forward/backward from one.

#include "loom/io/layer_config.hpp"
#include "loom/layer.hpp"

namespace loom {

class Flatten final : public Layer {
 public:
  static constexpr std::string_view kKind = "Flatten";
  std::string_view kind() const override { return kKind; }
  static std::unique_ptr<Layer> from_config(LayerConfigReader&) { return std::make_unique<Flatten>(); }
  std::string_view name_stem() const override { return "flatten"; }

  Shape build(const Shape& input, Random&) override { return set_shapes(input, Shape{input.size()}); }

  const Tensor& forward(const Tensor& x) override {
    infer(x, y_);
    return y_;
  }
  const Tensor& backward(const Tensor& dy) override {
    reshape(dy, dx_, input_shape());
    return dx_;
  }
  void infer(const Tensor& x, Tensor& y) const override {
    check_input(x);
    reshape(x, y, output_shape());
  }

 private:
  // The data is already in the right order: only the dimensions change.
  static void reshape(const Tensor& from, Tensor& to, const Shape& s) {
    resize_batch(to, from.dimension(0), s);
    std::copy_n(from.data(), from.size(), to.data());
  }

  Tensor y_;   // (N, 1, 1, H*W*C)
  Tensor dx_;  // (N, H, W, C)
};

}  // namespace loom
