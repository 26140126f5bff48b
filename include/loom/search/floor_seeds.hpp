#pragma once
// Floor seeds: a few catalog items per cluster, for exact search
// (exact_search.hpp) to score before it scans, so that a query's k-th best
// score (its floor) starts near its final value instead of at -infinity.
// The screen passes over items whose bound is below the floor: with a low
// floor the first items of a scan are nearly all scored, and every new
// k-th best along the way lets more through.
//
// The catalog's vectors are grouped by spherical k-means (on a sample); each
// cluster keeps the items with the highest dot products with its centre. A
// query takes the cluster whose centre it points at most, and exact search
// scores that cluster's items: their k-th best score is a floor no top-k
// item can be below. Which items they are only decides how high the floor
// starts; the result does not depend on it.
//
// Thread safety: values; const members are safe from many threads.

#include <span>
#include <vector>

#include "loom/search/catalog.hpp"

namespace loom::search {

class FloorSeeds {
 public:
  static constexpr Index kItemsPerCluster = 32;  // the items a query scores first

  FloorSeeds() = default;
  /// Clusters of c's vectors and their items; none for catalogs of fewer
  /// than 2,048 items or vectors of more than 512 values. In src/floor_seeds.cpp.
  explicit FloorSeeds(const Catalog& c);

  Index clusters() const { return clusters_; }
  /// The rows to score first for a query of dim values: the items of the
  /// cluster whose centre has the highest dot product with it (none without clusters).
  std::span<const Index> rows_for(const float* query) const;

  std::size_t memory_bytes() const { return centres_.size() * sizeof(float) + (rows_.size() + starts_.size()) * sizeof(Index); }

 private:
  Index dim_ = 0, clusters_ = 0;
  std::vector<float> centres_;  // clusters_ x dim_, unit length
  std::vector<Index> rows_;     // cluster c's items: rows_[starts_[c] .. starts_[c + 1])
  std::vector<Index> starts_;
};

}  // namespace loom::search
