#pragma once
// A per-channel affine map, the arithmetic of an inference-mode
// BatchNormalization, in one place so that the layer and the convolutions
// that apply it in their output stage compute it alike:
//
//   x_hat = (x - center[c]) * inv_std[c]        y = x_hat * gamma[c] + beta[c]
//
// A chain's inference (chain::infer_step) hands the BatchNormalization after a
// Conv2D to the convolution, which applies it (and the ReLU after it) to each
// output value while it is still in registers, after the bias: no pass over
// the feature map of its own, and the same bits as the two layers run one
// after the other (tests: test_batch_normalization.cpp).
//
// Thread safety: a view of arrays its owner keeps; pure functions.

#include "loom/tensor.hpp"

namespace loom {

struct ChannelNormalization {
  const float* center = nullptr;  // null: no map (the identity)
  const float* inv_std = nullptr;
  const float* gamma = nullptr;
  const float* beta = nullptr;

  explicit operator bool() const { return center != nullptr; }

  static float normalized(float x, float center, float inv_std) { return (x - center) * inv_std; }
  // y before a ReLU. One function for BatchNormalization's forward, its
  // backward's ReLU mask and the convolutions' output stage, so that all round
  // alike (an FMA in all, where the target has one, or in none).
  static float affine(float x_hat, float gamma, float beta) { return x_hat * gamma + beta; }
  /// The map of channel c applied to x.
  float operator()(float x, Index c) const { return affine(normalized(x, center[c], inv_std[c]), gamma[c], beta[c]); }

  /// The same map for the channels from c0 on (a tile's first column).
  ChannelNormalization from(Index c0) const {
    if (!center) return {};
    return {center + c0, inv_std + c0, gamma + c0, beta + c0};
  }
};

}  // namespace loom
