#pragma once
// The model behind a catalog. A catalog made from images keeps the model
// that embedded them (its model file without optimizer state or history,
// under a megabyte for the seed model), so `loom search CATALOG photo.jpg`
// embeds the photo exactly as the catalog's items were, and its fingerprint:
// 64 bits (FNV-1a over those bytes) that change with the architecture or any
// weight. Queries embedded by another model would be meaningless against the
// catalog, so check_same_model refuses that model.
//
// Thread safety: reads only.

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "loom/io/model_file.hpp"
#include "loom/search/catalog.hpp"

namespace loom::search {

inline std::uint64_t fingerprint_of_bytes(std::span<const std::uint8_t> bytes) {
  std::uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a, 64 bits
  for (const std::uint8_t b : bytes) h = (h ^ b) * 0x100000001b3ull;
  return h;
}

/// The model file bytes a catalog keeps: weights and architecture only.
inline std::vector<std::uint8_t> catalog_model_bytes(const Sequential& model) {
  return encode_model(model, {.include_optimizer_state = false, .include_history = false});
}

inline std::uint64_t model_fingerprint(const Sequential& model) { return fingerprint_of_bytes(catalog_model_bytes(model)); }

/// The CatalogInfo of a catalog of model's embeddings at `layer` ("" for the default).
inline CatalogInfo catalog_info_for(const Sequential& model, std::string_view layer, std::vector<std::string> class_names,
                                    VectorEncoding encoding = VectorEncoding::Float32) {
  CatalogInfo info;
  info.model = catalog_model_bytes(model);
  info.model_fingerprint = fingerprint_of_bytes(info.model);
  info.layer = embedding_layer_name(model, layer);
  const std::size_t depth = embedding_depth(model, layer);
  info.dim = depth == 0 ? model.input_shape().size() : model.layer(depth - 1).output_shape().size();
  info.class_names = std::move(class_names);
  info.encoding = encoding;
  return info;
}

/// The model the catalog keeps; UsageError naming `catalog_name` when it keeps none.
inline Sequential catalog_model(const Catalog& c, const std::string& catalog_name) {
  if (c.info().model.empty())
    throw UsageError(catalog_name + ": the catalog holds no model (its vectors were not made from images by loom "
                                    "index); give the model that made them");
  return decode_model(c.info().model, catalog_name + " (its model)");
}

/// DataError unless model is the one that embedded the catalog's items.
inline void check_same_model(const Catalog& c, const Sequential& model, const std::string& catalog_name,
                             const std::string& model_name) {
  const std::uint64_t f = model_fingerprint(model);
  if (f != c.info().model_fingerprint)
    throw DataError(catalog_name + ": the catalog was made by another model (fingerprint " +
                    std::to_string(c.info().model_fingerprint) + ") than " + model_name + " (fingerprint " +
                    std::to_string(f) + "); its vectors cannot be compared with that model's: index again with loom "
                    "index " + model_name);
}

}  // namespace loom::search
