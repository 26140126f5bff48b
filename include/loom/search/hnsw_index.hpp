#pragma once
// Approximate search for large catalogs: an HNSW graph (hierarchical
// navigable small world; Malkov and Yashunin 2016) from Debian's hnswlib,
// behind the VectorIndex interface that ExactSearch also serves.
//
//   const HnswIndex index(catalog, {.m = 16, .ef_construction = 200, .ef_search = 64});
//   SearchResults r = index.search(queries, {.k = 10});
//
// The graph is built from a Catalog, and never saved: the catalog file is
// the one persistent, validated format, and hnswlib's own index files are
// loaded without checks. Building inserts on one thread (concurrent inserts
// race in Debian's hnswlib 0.6.2; see src/hnsw_index.cpp), so the same
// catalog and options give the same graph every time. Search answers each query on one thread, queries spread over the threads.
// Scores are the same cosine similarities ExactSearch gives.
//
// A class filter is applied to a larger candidate list (k x the share of the
// catalog the classes hold, x 2); a query for which that yields fewer than k
// items of the classes, when the classes hold k, is answered by exact search
// instead, so a filtered search still returns k results.
//
// hnswlib stays out of this header (like zlib and stb): it is compiled into
// src/hnsw_index.cpp only.
//
// Thread safety: search is const and safe from many threads; set_ef_search is not.

#include <cstdint>
#include <memory>

#include "loom/search/vector_index.hpp"

namespace loom::search {

struct HnswOptions {
  int m = 16;                 // graph degree (2m links per node on the bottom layer)
  int ef_construction = 200;  // candidate list while building: higher builds slower, a better graph
  int ef_search = 64;         // candidate list while searching (at least k): the recall / speed knob
  std::uint64_t seed = 100;   // draws each node's level
};

class HnswIndex final : public VectorIndex {
 public:
  /// Builds the graph over every item of catalog, which must outlive the index.
  explicit HnswIndex(const Catalog& catalog, const HnswOptions& options = {});
  ~HnswIndex() override;
  HnswIndex(const HnswIndex&) = delete;
  HnswIndex& operator=(const HnswIndex&) = delete;

  const Catalog& catalog() const override { return catalog_; }
  const HnswOptions& options() const { return options_; }
  void set_ef_search(int ef);
  /// Bytes of the graph and its copy of the vectors.
  std::size_t memory_bytes() const;

  using VectorIndex::search;
  SearchResults search(const float* queries, Index m, const SearchOptions& options) const override;

 private:
  struct Graph;
  const Catalog& catalog_;
  HnswOptions options_;
  std::vector<Index> label_counts_;  // count_labels(catalog_)
  std::unique_ptr<Graph> graph_;
};

}  // namespace loom::search
