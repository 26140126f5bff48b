#pragma once
// Embeddings: what a trained network has learnt to see, as vectors to search.
//
//   const Tensor v = model.embed(images);            // (N, 1, 1, 128) for the seed model
//   const Tensor w = model.embed(images, "conv2d_1"); // any layer, by name
//
// The embedding of a sample is the output of one layer, flattened and scaled
// to unit length (L2), so that the dot product of two embeddings is their
// cosine similarity. The default layer is the one whose output feeds the last
// Dense layer: the features the classifier separates classes with (the 128
// values of the seed model's dense layer). embed runs predict's inference
// path (Sequential::layer_outputs: slices of 32 samples per thread) through
// the first layers only, so it is const and safe from many threads at once.
// An all-zero output (a ReLU layer can give one) stays zero: it is similar to
// nothing, score 0.
//
// Thread safety: const functions of the model; see Sequential.

#include <cmath>
#include <string>
#include <string_view>

#include "loom/sequential.hpp"

namespace loom {

/// How many layers run to produce the embedding named `layer` ("" for the
/// default, the input of the last Dense layer; "input" for the input itself). UsageError naming the
/// model's layers when there is no such layer, or no Dense layer for the default.
inline std::size_t embedding_depth(const Sequential& model, std::string_view layer = {}) {
  if (layer == "input") return 0;  // the input itself, as embedding_layer_name calls it
  std::string names;
  for (std::size_t i = 0; i < model.size(); ++i) {
    const Layer& l = model.layer(i);
    if (!layer.empty() && l.name() == layer) return i + 1;
    names += (names.empty() ? "" : ", ") + l.name() + " (" + std::string(l.kind()) + ")";
  }
  if (layer.empty())
    for (std::size_t i = model.size(); i-- > 0;)
      if (model.layer(i).kind() == "Dense") return i;
  throw UsageError(layer.empty() ? "embed: the model has no Dense layer, so there is no default embedding layer; "
                                   "name one of its layers: " + names
                                 : "embed: the model has no layer named \"" + std::string(layer) +
                                       "\"; its layers: " + names);
}

/// The name of the layer whose output embedding_depth(model, layer) takes ("input" for none).
inline std::string embedding_layer_name(const Sequential& model, std::string_view layer = {}) {
  const std::size_t depth = embedding_depth(model, layer);
  return depth == 0 ? std::string("input") : model.layer(depth - 1).name();
}

/// Scales every row of the (rows, cols) matrix at data to unit length; zero rows stay zero.
inline void l2_normalize_rows(float* data, Index rows, Index cols) {
  MatrixMap m(data, rows, cols);
  for (Index r = 0; r < rows; ++r) {
    const float norm = m.row(r).norm();
    if (norm > 0.0f) m.row(r) /= norm;
  }
}

namespace detail {
// (N, H, W, C) outputs as (N, 1, 1, H*W*C) unit rows.
inline Tensor as_embeddings(Tensor out) {
  const Index n = out.dimension(0), d = out.size() / std::max<Index>(n, 1);
  Tensor flat = out.reshape(Eigen::array<Index, 4>{n, 1, 1, d});
  l2_normalize_rows(flat.data(), n, d);
  return flat;
}
}  // namespace detail

inline Tensor Sequential::embed(const Tensor& x, std::string_view layer, Index batch_size) const {
  return detail::as_embeddings(layer_outputs(x, embedding_depth(*this, layer), batch_size, "embed"));
}

inline Tensor Sequential::embed(const Samples& data, std::string_view layer, Index batch_size) const {
  return detail::as_embeddings(layer_outputs(data, embedding_depth(*this, layer), batch_size, "embed"));
}

}  // namespace loom
