#pragma once
// A chain of layers run one after the other: the body of a composite layer's
// paths (Residual). Free functions over the layers a composite owns, so the
// composite keeps them in the one vector that children() exposes.
//
//   build:    each layer on the previous one's output shape
//   forward:  x -> layer 0 -> ... -> last; the returned tensor is the last layer's
//   backward: dy -> last -> ... -> layer 0; returns layer 0's dx
//   backward_into: the same, layer 0 writing its dx into the caller's tensor
//   infer:    const, scratch of its own, safe from many threads; a
//             BatchNormalization (and its ReLU) runs in a Conv2D's output
//             stage, or in place on the output of the layer before, and a
//             2x2 MaxPool2D inside a first-layer Conv2D's pass (infer_step)
//   fuse_relus: a layer that can (BatchNormalization) trains as one pass with the ReLU after it
//   fuse_max_pools: a layer that can (Conv2D with ReLU) pools for the MaxPool2D after it in training
// An empty chain is the identity.
//
// Thread safety: as every Layer: infer from many threads, the rest from one.

#include <memory>
#include <span>

#include "loom/layer.hpp"
#include "loom/layers/batch_normalization.hpp"
#include "loom/layers/conv2d.hpp"
#include "loom/layers/maxpool2d.hpp"
#include "loom/layers/relu.hpp"

namespace loom::chain {

using Layers = std::span<const std::unique_ptr<Layer>>;

inline Shape build(Layers layers, const Shape& input, Random& rng) {
  Shape s = input;
  for (const auto& l : layers) s = l->build(s, rng);
  return s;
}

inline const Tensor& forward(Layers layers, const Tensor& x) {
  const Tensor* h = &x;
  for (const auto& l : layers) h = &l->forward(*h);
  return *h;
}

inline const Tensor& backward(Layers layers, const Tensor& dy) {
  const Tensor* g = &dy;
  for (std::size_t i = layers.size(); i-- > 0;) g = &layers[i]->backward(*g);
  return *g;
}

/// backward, with the chain's dx assigned to or added onto `dx` by its first
/// layer (Layer::backward_into); an empty chain writes dy itself.
inline void backward_into(Layers layers, const Tensor& dy, Tensor& dx, GradientWrite how) {
  if (layers.empty()) return write_gradient(dy, dx, how);
  const Tensor* g = &dy;
  for (std::size_t i = layers.size(); i-- > 1;) g = &layers[i]->backward(*g);
  layers[0]->backward_into(*g, dx, how);
}

// Whether layers[i] is a Conv2D that pools for the MaxPool2D after it (fuse_max_pools).
inline bool pools_next(Layers layers, std::size_t i) {
  const auto* conv = dynamic_cast<const Conv2D*>(layers[i].get());
  const auto* pool = dynamic_cast<const MaxPool2D*>(layers[i + 1].get());
  return conv && pool && pool->input_may_be_pooled() && conv->pools_following();
}

// Whether layers[i, i + 4) are a Conv2D without activation, a
// BatchNormalization, a ReLU and a MaxPool2D the convolution can pool for
// in inference (Conv2D::pools_normalized).
inline bool pools_normalized_block(Layers layers, std::size_t i, std::size_t end) {
  if (i + 3 >= end) return false;
  const auto* conv = dynamic_cast<const Conv2D*>(layers[i].get());
  const auto* pool = dynamic_cast<const MaxPool2D*>(layers[i + 3].get());
  return conv && pool && dynamic_cast<const BatchNormalization*>(layers[i + 1].get()) &&
         dynamic_cast<const ReLU*>(layers[i + 2].get()) && conv->pools_normalized(*pool);
}

/// How many layers the inference step at layer i runs (infer_step), among
/// layers [i, end): 1, or with a BatchNormalization after it 2, or with that
/// one's ReLU 3, and with a MaxPool2D after those a Conv2D pools for 4; or 2
/// with the MaxPool2D a Conv2D pools for.
inline std::size_t step_size(Layers layers, std::size_t i, std::size_t end) {
  if (i + 1 >= end) return 1;
  if (pools_next(layers, i)) return 2;
  if (!dynamic_cast<const BatchNormalization*>(layers[i + 1].get())) return 1;
  if (pools_normalized_block(layers, i, end)) return 4;
  return i + 2 < end && dynamic_cast<const ReLU*>(layers[i + 2].get()) ? 3 : 2;
}

/// One step of a chain's inference: a Conv2D and the MaxPool2D it pools for
/// in one pass (Conv2D::infer_pooled); or layers[i] from `in` into `out`,
/// then the BatchNormalization after it (and its ReLU): inside a Conv2D's
/// output stage when layers[i] is one without activation
/// (Conv2D::infer_normalized; with the MaxPool2D after the ReLU, pooled in
/// that stage too, Conv2D::infer_normalized_pooled), else on `out` in place,
/// in one pass (BatchNormalization::infer_in_place). No tensor of their own
/// and no pass of the ReLU's; bitwise the values of the layers run one by
/// one. Returns how many layers ran (step_size); `end` bounds them (embed
/// stops early).
inline std::size_t infer_step(Layers layers, std::size_t i, std::size_t end, const Tensor& in, Tensor& out) {
  const std::size_t n = step_size(layers, i, end);
  if (n == 1) {
    static_cast<const Layer&>(*layers[i]).infer(in, out);
    return n;
  }
  if (pools_next(layers, i)) {
    static_cast<const Conv2D&>(*layers[i]).infer_pooled(in, out);
    return n;
  }
  const auto& bn = static_cast<const BatchNormalization&>(*layers[i + 1]);
  const auto* conv = dynamic_cast<const Conv2D*>(layers[i].get());
  if (n == 4) {
    conv->infer_normalized_pooled(in, out, bn.inference_map().view());
  } else if (conv && conv->activation() == Activation::None) {
    conv->infer_normalized(in, out, bn.inference_map().view(), n == 3);
  } else {
    static_cast<const Layer&>(*layers[i]).infer(in, out);
    bn.infer_in_place(out, n == 3);
  }
  return n;
}

/// y = the chain applied to x (x and y distinct), step by step (infer_step).
/// Alternates between y and one scratch tensor so that the last step writes y.
inline void infer(Layers layers, const Tensor& x, Tensor& y) {
  if (layers.empty()) {
    y = x;
    return;
  }
  std::size_t steps = 0;
  for (std::size_t i = 0; i < layers.size(); i += step_size(layers, i, layers.size())) ++steps;
  Tensor scratch;
  const Tensor* in = &x;
  for (std::size_t i = 0; i < layers.size(); --steps) {
    Tensor* out = (steps - 1) % 2 == 0 ? &y : &scratch;
    i += infer_step(layers, i, layers.size(), *in, *out);
    in = out;
  }
}

/// Offers every ReLU layer to the layer before it (Layer::take_following_relu:
/// a BatchNormalization takes it) and, where taken, has the ReLU pass values
/// through: one pass over the feature map instead of two, forward and
/// backward, with the same results (batch_normalization.hpp). Containers call
/// it once their layers are in place (Sequential::add, Residual::build); a
/// layer used on its own is never fused.
inline void fuse_relus(Layers layers) {
  for (std::size_t i = 0; i + 1 < layers.size(); ++i) {
    auto* relu = dynamic_cast<ReLU*>(layers[i + 1].get());
    if (relu && !relu->input_rectified() && layers[i]->take_following_relu()) relu->set_input_rectified(true);
  }
}

/// Offers every MaxPool2D to the layer before it (Layer::take_following_max_pool:
/// a Conv2D with ReLU pools 2x2 windows itself, conv2d.hpp) and, where taken,
/// has the pool pass on an input that comes pooled.
inline void fuse_max_pools(Layers layers) {
  for (std::size_t i = 0; i + 1 < layers.size(); ++i) {
    auto* pool = dynamic_cast<MaxPool2D*>(layers[i + 1].get());
    if (pool && !pool->input_may_be_pooled() && layers[i]->take_following_max_pool(*pool))
      pool->set_input_may_be_pooled(true);
  }
}

/// The fusions of a chain's training passes (fuse_relus, fuse_max_pools).
/// Containers call it once their layers are in place (Sequential::add,
/// Residual::build); a layer used on its own is never fused.
inline void fuse(Layers layers) {
  fuse_relus(layers);
  fuse_max_pools(layers);
}

}  // namespace loom::chain
