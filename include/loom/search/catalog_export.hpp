#pragma once
// A catalog in the bulk formats that distributed vector engines load, for
// when a catalog outgrows one machine (docs/visual-search.md shows how to load them):
//   vectors.npy      float32 (count, dim), NumPy format 1.0, C order; row i is item i
//   ids.npy          int64 (count): the items' ids, same order
//   metadata.jsonl   one line per item, same order: {"id", "label", "class"[, "path"]}
//                    (Milvus bulk insert: vectors.npy and ids.npy as field files)
//   items.jsonl      the same lines with the vector inline: {..., "vector": [...]}
//                    (Vespa feed, Elasticsearch _bulk with a dense_vector field,
//                    Qdrant and Weaviate batch upserts, after a one-line reshaping)
//   vectors.fvecs    per item: int32 dim, then dim float32 (FAISS and ann-benchmarks tools)
// Vectors are written as float32 also from an int8 catalog (decoded).
// Each file is written atomically; numbers little-endian.
//
// Thread safety: reads the catalog only.

#include <filesystem>
#include <vector>

#include "loom/search/catalog.hpp"

namespace loom::search {

void write_npy_vectors(const Catalog& catalog, const std::filesystem::path& path);
void write_npy_ids(const Catalog& catalog, const std::filesystem::path& path);
void write_metadata_jsonl(const Catalog& catalog, const std::filesystem::path& path);
void write_items_jsonl(const Catalog& catalog, const std::filesystem::path& path);
void write_fvecs(const Catalog& catalog, const std::filesystem::path& path);

/// All five into dir (created when missing); returns the files written.
std::vector<std::filesystem::path> export_catalog(const Catalog& catalog, const std::filesystem::path& dir);

}  // namespace loom::search
