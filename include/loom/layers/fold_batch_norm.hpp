#pragma once
// Folding BatchNormalization into the Conv2D or Dense before it, for inference.
//
// In inference a BatchNormalization is a fixed affine map per channel f,
//   y_f = (z_f - mean_f) s_f + beta_f,   s_f = gamma_f / sqrt(var_f + eps)
// (mean and var the moving statistics). When z = x * kernel + bias comes from
// a Conv2D or Dense without activation, the map folds into that layer:
//   kernel'[..., f] = kernel[..., f] s_f,   bias'_f = (bias_f - mean_f) s_f + beta_f
// and a standalone ReLU right after the BatchNormalization becomes the
// layer's fused activation. The folded model makes the same predictions
// within float rounding, with one pass over each feature map less per
// BatchNormalization (two with its ReLU).
//
//   loom::Sequential fast = loom::fold_batch_norm(model);  // model is unchanged
//
// Only inference is the same: the folded model has no batch statistics to
// train with. A BatchNormalization that does not follow a Conv2D or Dense
// without activation stays as it is.
//
// Thread safety: reads the model it is given (const), as predict does.

#include <cstdint>
#include <limits>
#include <memory>
#include <string>

#include "loom/io/byte_io.hpp"
#include "loom/io/layer_config.hpp"
#include "loom/layer_registry.hpp"
#include "loom/layers/batch_normalization.hpp"
#include "loom/layers/conv2d.hpp"
#include "loom/layers/dense.hpp"
#include "loom/layers/relu.hpp"
#include "loom/layers/residual.hpp"
#include "loom/sequential.hpp"

namespace loom {

/// Whether bn can be folded into `linear`: a built Conv2D or Dense without
/// activation whose output bn was built on.
inline bool can_fold_batch_norm(const Layer& linear, const BatchNormalization& bn) {
  const auto* activated = dynamic_cast<const ActivatedLayer*>(&linear);
  const bool conv_or_dense = dynamic_cast<const Conv2D*>(&linear) || dynamic_cast<const Dense*>(&linear);
  return conv_or_dense && activated->activation() == Activation::None && linear.built() && bn.built() &&
         bn.input_shape() == linear.output_shape();
}

namespace detail {

// kernel[..., f] *= s_f and bias_f = (bias_f - mean_f) s_f + beta_f, in double,
// rounded once, for the kernel and bias (params 0 and 1) of a Conv2D or
// Dense, whatever its activation: the caller decides whether that is a fold.
inline void scale_kernel_and_bias(Layer& linear, const BatchNormalization& bn) {
  Param& kernel = linear.params()[0];
  Param& bias = linear.params()[1];
  const Index filters = bias.size();  // the kernel's last axis, in Keras order
  const Eigen::ArrayXd s = bn.gamma().cast<double>().array() *
                           (bn.moving_variance().cast<double>().array() + static_cast<double>(bn.options().epsilon)).rsqrt();
  for (Index i = 0; i < kernel.size(); ++i)
    kernel.value[i] = static_cast<float>(static_cast<double>(kernel.value[i]) * s[i % filters]);
  bias.value = ((bias.value.cast<double>().array() - bn.moving_mean().cast<double>().array()) * s +
                bn.beta().cast<double>().array())
                   .cast<float>()
                   .matrix();
}

}  // namespace detail

/// Rewrites linear's kernel and bias so that linear alone computes what
/// linear followed by bn computes in inference (see the top of this file).
/// UsageError unless can_fold_batch_norm(linear, bn).
inline void fold_batch_norm_into(Layer& linear, const BatchNormalization& bn) {
  if (!can_fold_batch_norm(linear, bn))
    throw UsageError("fold_batch_norm_into: " + bn.name() + " cannot be folded into " + linear.name() + " (" +
                     std::string(linear.kind()) + "): it folds into a built Conv2D or Dense without activation "
                     "whose output it normalises");
  detail::scale_kernel_and_bias(linear, bn);
}

namespace detail {

// An unbuilt copy of a layer, with its name: its options written and read
// back through the layer registry, as a model file does. UsageError for a
// kind that is not registered.
inline std::unique_ptr<Layer> unbuilt_copy(const Layer& layer) {
  ByteWriter bytes;
  LayerConfigWriter(bytes).put_layer(layer);
  ByteReader reader(bytes.bytes(), "the copy of layer " + layer.name());
  ParamBudget unlimited{.limit = std::numeric_limits<std::uint64_t>::max()};
  return read_layer(reader, layer.input_shape(), unlimited);
}

// A Conv2D or Dense like `linear` (options, name) with another activation, unbuilt.
inline std::unique_ptr<Layer> with_activation(const Layer& linear, Activation a) {
  std::unique_ptr<Layer> copy;
  if (const auto* conv = dynamic_cast<const Conv2D*>(&linear)) {
    Conv2DOptions o = conv->options();
    o.activation = a;
    copy = std::make_unique<Conv2D>(o);
  } else {
    copy = std::make_unique<Dense>(DenseOptions{.units = dynamic_cast<const Dense&>(linear).units(), .activation = a});
  }
  copy->set_name(linear.name());
  return copy;
}

// Every parameter value of `from` into `to`, a layer of the same kind built on the same shape.
inline void copy_param_values(const Layer& from, Layer& to) {
  std::vector<const Param*> values;
  for_each_param(from, [&](const Layer&, const Param& p) { values.push_back(&p); });
  std::size_t i = 0;
  for_each_param(to, [&](Layer&, Param& p) { p.value = values.at(i++)->value; });
}

}  // namespace detail

namespace detail {

// One layer of a folded chain: its unbuilt copy (owned until it is added to
// a model or a block), where its values come from (a foldable Conv2D or
// Dense and the BatchNormalization that folds into it, or any other layer),
// and for a residual block the folded layers of its two paths.
struct FoldedLayer {
  FoldedLayer(std::unique_ptr<Layer> c, const Layer& from, const BatchNormalization* b = nullptr)
      : copy(std::move(c)), built(copy.get()), source(&from), bn(b) {}

  std::unique_ptr<Layer> copy;
  Layer* built;  // the copy, still valid once the folded model or block owns it
  const Layer* source;
  const BatchNormalization* bn;
  std::vector<FoldedLayer> children;  // a Residual's main path, then its shortcut
};

inline std::vector<FoldedLayer> fold_chain(const std::vector<const Layer*>& chain);

// A residual block with both its paths folded.
inline FoldedLayer fold_residual(const Residual& block) {
  FoldedLayer f(std::make_unique<Residual>(block.options()), block);
  auto& copy = static_cast<Residual&>(*f.built);
  copy.set_name(block.name());
  auto take = [&](chain::Layers path, bool main) {
    std::vector<const Layer*> layers;
    for (const auto& l : path) layers.push_back(l.get());
    for (FoldedLayer& child : fold_chain(layers)) {
      if (main) copy.add(std::move(child.copy));
      else copy.add_shortcut(std::move(child.copy));
      f.children.push_back(std::move(child));
    }
  };
  take(block.main_path(), true);
  take(block.shortcut_path(), false);
  return f;
}

// The layers of a chain with every foldable Conv2D/Dense -> BatchNormalization
// (-> ReLU) as one layer, residual blocks folded inside, the rest copied.
inline std::vector<FoldedLayer> fold_chain(const std::vector<const Layer*>& chain) {
  std::vector<FoldedLayer> out;
  for (std::size_t i = 0; i < chain.size(); ++i) {
    const Layer& layer = *chain[i];
    const auto* bn = i + 1 < chain.size() ? dynamic_cast<const BatchNormalization*>(chain[i + 1]) : nullptr;
    if (bn && can_fold_batch_norm(layer, *bn)) {
      const bool relu_after = i + 2 < chain.size() && dynamic_cast<const ReLU*>(chain[i + 2]);
      out.emplace_back(with_activation(layer, relu_after ? Activation::ReLU : Activation::None), layer, bn);
      i += relu_after ? 2 : 1;
    } else if (const auto* block = dynamic_cast<const Residual*>(&layer)) {
      out.push_back(fold_residual(*block));
    } else {
      out.emplace_back(unbuilt_copy(layer), layer);
    }
  }
  return out;
}

// The folded layer's values, once built: copied from its source, and the
// BatchNormalization's map folded in (the ReLU, if any, applies after it).
inline void put_folded_values(const FoldedLayer& f) {
  if (dynamic_cast<const Residual*>(f.source)) {
    for (const FoldedLayer& child : f.children) put_folded_values(child);
    return;
  }
  copy_param_values(*f.source, *f.built);
  if (f.bn) scale_kernel_and_bias(*f.built, *f.bn);
}

}  // namespace detail

/// A new model without the BatchNormalization layers that fold into the
/// Conv2D or Dense before them (and their ReLU, fused into that layer),
/// inside residual blocks too, with the same input shape, every other layer
/// copied with its weights, and, when `model` is compiled, compiled with its
/// loss and a fresh copy of its optimizer (options kept, state not). Its
/// predictions equal model's within float rounding. Every layer kind must be
/// registered (layer_registry.hpp): the copies are made from the layers'
/// configurations. A forced convolution algorithm is kept on folded layers
/// only, as a model file keeps none.
inline Sequential fold_batch_norm(const Sequential& model) {
  std::vector<const Layer*> layers;
  for (std::size_t i = 0; i < model.size(); ++i) layers.push_back(&model.layer(i));
  std::vector<detail::FoldedLayer> folded = detail::fold_chain(layers);
  Sequential folded_model(model.input_shape());
  for (detail::FoldedLayer& f : folded) folded_model.add(std::move(f.copy));  // builds it, children too
  for (const detail::FoldedLayer& f : folded) detail::put_folded_values(f);
  if (model.compiled()) folded_model.compile(model.optimizer(), model.loss());
  return folded_model;
}

}  // namespace loom
