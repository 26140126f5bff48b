#pragma once
// Approximate search for large catalogs: an inverted file (IVF) from
// Debian's FAISS, behind the VectorIndex interface that ExactSearch also serves.
//
//   const IvfIndex index(catalog, {.nlist = 1000, .nprobe = 4});
//   SearchResults r = index.search(queries, {.k = 10});
//
// k-means (FAISS's, spherical, on a sample of the catalog) cuts the unit
// sphere into nlist cells; each item is filed in the list of its nearest
// centroid. A query scans only the nprobe lists whose centroids are nearest
// to it: the recall / speed knob. Catalogs of clustered vectors, whose
// neighbours share the query's cluster, suit it well (docs/visual-search.md
// says why it replaced HNSW for the 1,000,000-item target).
//
// The index is built from a Catalog and never saved: the catalog file is the
// one persistent, validated format. The same catalog, options and thread
// count give the same index every time (the sample and k-means are seeded).
//
// Lists hold 8-bit codes of the vectors (FAISS's scalar quantiser, a quarter
// of the bytes to read). The best `shortlist` candidates by their codes are
// scored again exactly from the catalog, as ExactSearch scores
// (exact_score.hpp), so an item gets the same score from either backend and
// the order is the same total order.
//
// A class filter is applied while the lists are scanned; a query whose
// scanned lists hold fewer than k items of the classes, when the catalog
// holds k, is answered by exact search instead, so a filtered search still
// returns k results.
//
// FAISS stays out of this header (like hnswlib, zlib and stb): it is
// compiled into src/ivf_index.cpp only.
//
// Thread safety: search is const and safe from many threads; set_nprobe is not.

#include <cstdint>
#include <memory>

#include "loom/search/vector_index.hpp"

namespace loom::search {

struct IvfOptions {
  Index nlist = 0;              // inverted lists (k-means cells); 0: the square root of the item count
  Index nprobe = 16;            // lists scanned per query, at most nlist: the recall / speed knob
  Index shortlist = 0;          // best candidates by their codes scored exactly per query (at least k); 0: 4 k
  Index train_sample = 65536;   // items k-means learns from (all of them when the catalog holds fewer)
  std::uint64_t seed = 100;     // draws the sample and k-means' first centroids
};

class IvfIndex final : public VectorIndex {
 public:
  /// Trains and fills the lists from every item of catalog, which must outlive the index.
  /// UsageError for an empty catalog or options out of range.
  explicit IvfIndex(const Catalog& catalog, const IvfOptions& options = {});
  ~IvfIndex() override;
  IvfIndex(const IvfIndex&) = delete;
  IvfIndex& operator=(const IvfIndex&) = delete;

  /// The list count nlist = 0 means for n items: the square root of n, rounded, at least 1.
  static Index default_nlist(Index n);

  const Catalog& catalog() const override { return catalog_; }
  /// The options, nlist resolved.
  const IvfOptions& options() const { return options_; }
  void set_nprobe(Index nprobe);
  /// Bytes of the lists (a float copy of every vector and its row) and the centroids.
  std::size_t memory_bytes() const;

  using VectorIndex::search;
  SearchResults search(const float* queries, Index m, const SearchOptions& options) const override;

 private:
  struct Lists;
  const Catalog& catalog_;
  IvfOptions options_;
  std::unique_ptr<Lists> lists_;
};

}  // namespace loom::search
