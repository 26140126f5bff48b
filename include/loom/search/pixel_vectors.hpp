#pragma once
// Raw pixels as search vectors: each image's bytes scaled as the model sees
// them (x / 255) and L2-normalised. The baseline that learnt embeddings are
// measured against (loom search --evaluate, bench/search_quality.cpp).
//
// Thread safety: reads the data set only.

#include <cstdint>
#include <span>

#include "loom/data/dataset.hpp"
#include "loom/search/embed.hpp"

namespace loom::search {

/// (rows.size(), 1, 1, pixels per image): the images rows[0], rows[1], ... of d.
inline Tensor pixel_vectors(const Dataset& d, std::span<const std::int64_t> rows) {
  const Index per = d.shape().size(), n = static_cast<Index>(rows.size());
  Tensor v(n, 1, 1, per);
  for (Index i = 0; i < n; ++i) scale_pixels(d.image_bytes(rows[static_cast<std::size_t>(i)]), v.data() + i * per);
  l2_normalize_rows(v.data(), n, per);
  return v;
}

/// Every image of d.
inline Tensor pixel_vectors(const Dataset& d) {
  std::vector<std::int64_t> rows(static_cast<std::size_t>(d.size()));
  for (std::size_t i = 0; i < rows.size(); ++i) rows[i] = static_cast<std::int64_t>(i);
  return pixel_vectors(d, rows);
}

}  // namespace loom::search
