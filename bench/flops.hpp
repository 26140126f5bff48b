#pragma once
// The benchmarks' FLOP convention, one definition for loom_bench and loom_suite.
//
// Only matrix products count, each as 2*M*N*K:
//   Conv2D forward  = 2 * N*OH*OW * K * F   with K = KH*KW*C   (col (P,K) x W (K,F))
//   Dense forward   = 2 * N * I * O
//   backward        = 2 * forward           (dW = col^T dZ and dX = dZ W^T, each
//                                            a product of the forward's size)
//                   = 1 * forward           for a layer that skips dX
//                                            (!needs_input_gradient(): the first layer)
// Bias adds, activations, im2col/col2im and pooling are not counted. A faster
// algorithm (Winograd, FFT) is still credited with these direct-equivalent FLOPs.

#include "loom/loom.hpp"

namespace loom::bench {

// Forward FLOPs per image of a built layer: 2 * OH * OW * |kernel|, which is
// 2*OH*OW*K*F for Conv2D (kernel K x F) and 2*I*O for Dense (output 1 x 1);
// a composite layer (Residual) counts its children's. Zero for layers without
// a kernel.
inline double forward_flops_per_image(const Layer& layer) {
  if (!layer.children().empty()) {
    double flops = 0.0;
    for (const auto& c : layer.children()) flops += forward_flops_per_image(*c);
    return flops;
  }
  for (const Param& p : layer.params())
    if (p.name == "kernel")
      return 2.0 * static_cast<double>(layer.output_shape().height()) *
             static_cast<double>(layer.output_shape().width()) * static_cast<double>(p.size());
  return 0.0;
}

// Backward FLOPs per image: dW always, dX unless the layer skips it.
inline double backward_flops_per_image(const Layer& layer) {
  if (!layer.children().empty()) {
    double flops = 0.0;
    for (const auto& c : layer.children()) flops += backward_flops_per_image(*c);
    return flops;
  }
  return (layer.needs_input_gradient() ? 2.0 : 1.0) * forward_flops_per_image(layer);
}

inline double forward_flops_per_image(const Sequential& model) {
  double flops = 0.0;
  for (std::size_t i = 0; i < model.size(); ++i) flops += forward_flops_per_image(model.layer(i));
  return flops;
}

inline double backward_flops_per_image(const Sequential& model) {
  double flops = 0.0;
  for (std::size_t i = 0; i < model.size(); ++i) flops += backward_flops_per_image(model.layer(i));
  return flops;
}

}  // namespace loom::bench
