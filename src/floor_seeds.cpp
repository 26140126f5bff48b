// The clusters of loom/search/floor_seeds.hpp.

#include "loom/search/floor_seeds.hpp"

#include <algorithm>
#include <functional>
#include <utility>

namespace loom::search {
namespace {

constexpr Index kMaxClusters = 256;
constexpr Index kCatalogItemsPerCluster = 128;  // fewer clusters for smaller catalogs
constexpr Index kMinClusters = 16;              // below this many, no seeds
constexpr Index kMaxDim = 512;                  // the rotation's limit too (src/screening_codes.cpp)
constexpr Index kSample = 8192;                 // vectors the centres are learnt from, evenly spaced
constexpr Index kPool = 65536;                  // items the clusters' own items are chosen from, evenly spaced
constexpr int kIterations = 5;
constexpr Index kChunk = 2048;  // rows compared with the centres at a time: (kChunk, clusters) floats

// Every step-th row of c, up to count rows, as a matrix.
RowMatrix every(const Catalog& c, Index step, Index count) {
  RowMatrix rows(count, c.dim());
  std::vector<float> scratch;
  for (Index s = 0; s < count; ++s) rows.row(s) = ConstMatrixMap(c.decode_rows(s * step, 1, scratch), 1, c.dim());
  return rows;
}

// For each row of rows, its best centre (highest dot product) and that dot product.
void nearest(const RowMatrix& rows, const RowMatrix& centres, std::vector<Index>& best, std::vector<float>& dot) {
  best.resize(static_cast<std::size_t>(rows.rows()));
  dot.resize(best.size());
  RowMatrix d;
  for (Index r0 = 0; r0 < rows.rows(); r0 += kChunk) {
    const Index rn = std::min(kChunk, rows.rows() - r0);
    d.noalias() = rows.middleRows(r0, rn) * centres.transpose();
    for (Index r = 0; r < rn; ++r) {
      Eigen::Index c = 0;
      dot[static_cast<std::size_t>(r0 + r)] = d.row(r).maxCoeff(&c);
      best[static_cast<std::size_t>(r0 + r)] = c;
    }
  }
}

}  // namespace

FloorSeeds::FloorSeeds(const Catalog& c) : dim_(c.dim()) {
  const Index n = c.size(), k = std::min(kMaxClusters, n / kCatalogItemsPerCluster);
  if (k < kMinClusters || dim_ > kMaxDim) return;
  clusters_ = k;

  // Spherical k-means on unit-length samples: centres are mean directions.
  const Index step = std::max<Index>(1, n / kSample), count = n / step;
  RowMatrix sample = every(c, step, count);
  for (Index s = 0; s < count; ++s)
    if (const float len = sample.row(s).norm(); len > 0.0f) sample.row(s) /= len;
  RowMatrix centres(k, dim_);
  for (Index j = 0; j < k; ++j) centres.row(j) = sample.row(j * count / k);
  std::vector<Index> best;
  std::vector<float> dot;
  for (int it = 0; it < kIterations; ++it) {
    nearest(sample, centres, best, dot);
    RowMatrix sums = RowMatrix::Zero(k, dim_);
    for (Index s = 0; s < count; ++s) sums.row(best[static_cast<std::size_t>(s)]) += sample.row(s);
    for (Index j = 0; j < k; ++j)
      if (const float len = sums.row(j).norm(); len > 0.0f) centres.row(j) = sums.row(j) / len;  // else: as it was
  }

  // Each cluster's items: those of the pool nearest its centre with the highest dot products.
  const Index pool_step = std::max<Index>(1, n / kPool), pool = n / pool_step;
  nearest(every(c, pool_step, pool), centres, best, dot);
  std::vector<std::vector<std::pair<float, Index>>> members(static_cast<std::size_t>(k));
  for (Index s = 0; s < pool; ++s)
    members[static_cast<std::size_t>(best[static_cast<std::size_t>(s)])].push_back({dot[static_cast<std::size_t>(s)], s * pool_step});
  starts_.push_back(0);
  for (auto& m : members) {
    const auto keep = std::min<std::size_t>(m.size(), kItemsPerCluster);
    std::partial_sort(m.begin(), m.begin() + static_cast<std::ptrdiff_t>(keep), m.end(), std::greater<>());
    for (std::size_t i = 0; i < keep; ++i) rows_.push_back(m[i].second);
    starts_.push_back(static_cast<Index>(rows_.size()));
  }
  centres_.assign(centres.data(), centres.data() + k * dim_);
}

std::span<const Index> FloorSeeds::rows_for(const float* query) const {
  if (clusters_ == 0) return {};
  const Eigen::VectorXf dots = ConstMatrixMap(centres_.data(), clusters_, dim_) * Eigen::Map<const Eigen::VectorXf>(query, dim_);
  Eigen::Index c = 0;
  dots.maxCoeff(&c);
  const auto at = static_cast<std::size_t>(c);
  return {rows_.data() + starts_[at], static_cast<std::size_t>(starts_[at + 1] - starts_[at])};
}

}  // namespace loom::search
