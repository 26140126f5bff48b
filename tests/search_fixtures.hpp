#pragma once
// Synthetic catalogs for the search tests: unit vectors drawn around a few
// class centres, so neighbours of a class exist and ranks are meaningful.

#include <cmath>
#include <numeric>
#include <vector>

#include "loom/random.hpp"
#include "loom/search/catalog.hpp"
#include "loom/search/embed.hpp"

namespace loom::testing {

struct Vectors {
  std::vector<float> values;  // (n, dim) unit rows
  std::vector<Label> labels;
};

/// n unit vectors of dim values: class c (of `classes`) around centre c, with noise `spread`.
inline Vectors clustered_vectors(Index n, Index dim, Label classes, std::uint64_t seed, float spread = 0.6f) {
  Random rng(seed);
  std::vector<float> centres(static_cast<std::size_t>(classes * dim));
  for (float& v : centres) v = rng.uniform(-1.0f, 1.0f);
  Vectors out{std::vector<float>(static_cast<std::size_t>(n * dim)), std::vector<Label>(static_cast<std::size_t>(n))};
  for (Index i = 0; i < n; ++i) {
    const Label c = static_cast<Label>(rng.below(static_cast<std::uint64_t>(classes)));
    out.labels[static_cast<std::size_t>(i)] = c;
    for (Index j = 0; j < dim; ++j)
      out.values[static_cast<std::size_t>(i * dim + j)] =
          centres[static_cast<std::size_t>(c * dim + j)] + rng.uniform(-spread, spread);
  }
  l2_normalize_rows(out.values.data(), n, dim);
  return out;
}

struct SyntheticOptions {
  search::VectorEncoding encoding = search::VectorEncoding::Float32;
  float spread = 0.6f;     // noise around the class centres
  Label extra_names = 0;   // class names beyond the classes drawn, for items added later
};

/// A catalog of those vectors with ids 1000 + 3i (not positions, to catch a mix-up).
inline search::Catalog synthetic_catalog(Index n, Index dim, Label classes, std::uint64_t seed,
                                         const SyntheticOptions& o = {}) {
  std::vector<std::string> names;
  for (Label c = 0; c < classes + o.extra_names; ++c) names.push_back("class" + std::to_string(c));
  search::Catalog catalog({.dim = dim, .model_fingerprint = 42, .layer = "dense", .class_names = names,
                           .encoding = o.encoding});
  const Vectors v = clustered_vectors(n, dim, classes, seed, o.spread);
  std::vector<std::int64_t> ids(static_cast<std::size_t>(n));
  for (Index i = 0; i < n; ++i) ids[static_cast<std::size_t>(i)] = 1000 + 3 * i;
  catalog.add(v.values.data(), ids, v.labels);
  return catalog;
}

}  // namespace loom::testing
