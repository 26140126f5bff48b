#pragma once
// GlobalAveragePooling2D: the mean of each channel over the whole image.
//
//   x  (N, H, W, C)
//   y  (N, C)          y[c] = (sum over (h, w) of x[h, w, c]) / (H W)
//
// The output is flat, as Keras's (keepdims=False), so a Dense layer can follow
// without a Flatten. Backward: every position of the image gets dy[c] / (H W).
//
// Thread safety: as every Layer (layer.hpp): infer from many threads, forward/backward from one.

#include <algorithm>
#include <memory>
#include <string_view>

#include "loom/io/layer_config.hpp"
#include "loom/layer.hpp"
#include "loom/parallel.hpp"

namespace loom {

class GlobalAveragePooling2D final : public Layer {
 public:
  static constexpr std::string_view kKind = "GlobalAveragePooling2D";
  std::string_view kind() const override { return kKind; }
  std::string_view name_stem() const override { return "global_average_pooling2d"; }
  static std::unique_ptr<Layer> from_config(LayerConfigReader&) { return std::make_unique<GlobalAveragePooling2D>(); }

  Shape build(const Shape& input, Random&) override {
    if (input.rank() != 3)
      throw ShapeError(label() + ": expects images (height, width, channels), got " + input.to_string());
    return set_shapes(input, Shape{input[2]});
  }

  const Tensor& forward(const Tensor& x) override {
    infer(x, y_);
    return y_;
  }

  const Tensor& backward(const Tensor& dy) override {
    const Index n = dy.dimension(0), c = input_shape()[2], hw = positions();
    resize_batch(dx_, n, input_shape());
    parallel_for(n, true, [&](Index s) {
      float* first = dx_.data() + s * hw * c;  // the share of position 0, copied to the others
      for (Index ch = 0; ch < c; ++ch) first[ch] = dy.data()[s * c + ch] / static_cast<float>(hw);
      for (Index p = 1; p < hw; ++p) std::copy_n(first, c, first + p * c);
    });
    return dx_;
  }

  void infer(const Tensor& x, Tensor& y) const override {
    check_input(x);
    const Index n = x.dimension(0), c = input_shape()[2], hw = positions();
    resize_batch(y, n, output_shape());
    parallel_for(n, true, [&](Index s) {
      float* __restrict mean = y.data() + s * c;
      const float* image = x.data() + s * hw * c;
      std::copy_n(image, c, mean);
      // Positions in order, channels innermost (contiguous in NHWC): a sum that vectorises.
      for (Index p = 1; p < hw; ++p) {
        const float* __restrict v = image + p * c;
        for (Index ch = 0; ch < c; ++ch) mean[ch] += v[ch];
      }
      for (Index ch = 0; ch < c; ++ch) mean[ch] /= static_cast<float>(hw);  // a division, as TensorFlow's mean
    });
  }

 private:
  Index positions() const { return input_shape()[0] * input_shape()[1]; }

  Tensor y_;   // (N, 1, 1, C)
  Tensor dx_;  // (N, H, W, C)
};

}  // namespace loom
