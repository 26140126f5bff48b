#pragma once
// loom's threading. Eigen's own product threads are off (the CMake target
// defines EIGEN_DONT_PARALLELIZE): they cost more than they give on the small
// products of a CNN, by as much as 3x on one image's inference. loom instead
// spreads fixed blocks of work (samples, array blocks, stripes of a product:
// loom/gemm.hpp) over OpenMP threads, each block computed single-threaded.
//
// Elementwise work over long arrays is split into fixed blocks that OpenMP
// spreads over the threads when there is enough of it. Each block is an Eigen
// array expression, which Eigen vectorises (a plain loop with std::sqrt or a
// select in it is not always vectorised by the compiler). Blocks are fixed, so
// results do not depend on the thread count.
//
// Thread safety: callable from many threads at once; f must be safe on disjoint blocks.

#include <algorithm>

#include "loom/tensor.hpp"

namespace loom {

/// Calls f(begin, length) for consecutive blocks covering [0, n).
template <typename F>
void for_blocks(Index n, F&& f) {
  constexpr Index kBlock = Index{1} << 14;  // 64 KB of floats: in L2, worth a thread
  const Index blocks = (n + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(static) if (blocks > 4)
  for (Index b = 0; b < blocks; ++b) f(b * kBlock, std::min(kBlock, n - b * kBlock));
}

/// sums (1, cols) = the column sums of m (rows, cols), in fixed blocks of rows
/// spread over the threads and added in block order, so the result does not
/// depend on the thread count.
template <typename Matrix>
void column_sums(const Matrix& m, Eigen::VectorXf& sums) {
  constexpr Index kRows = 2048;
  const Index blocks = (m.rows() + kRows - 1) / kRows;
  Eigen::MatrixXf parts(m.cols(), std::max<Index>(blocks, 1));
  parts.setZero();
#pragma omp parallel for schedule(static) if (blocks > 1 && m.size() >= (Index{1} << 16))
  for (Index b = 0; b < blocks; ++b)
    parts.col(b).noalias() = m.middleRows(b * kRows, std::min(kRows, m.rows() - b * kRows)).colwise().sum().transpose();
  sums = parts.col(0);
  for (Index b = 1; b < blocks; ++b) sums += parts.col(b);
}

using ArrayMap = Eigen::Map<Eigen::ArrayXf>;
using ConstArrayMap = Eigen::Map<const Eigen::ArrayXf>;

/// One vectorised pass: x * 0 is 0 for every finite x and NaN for NaN and
/// infinities, so the sum is 0 exactly when all are finite. (Eigen's
/// allFinite makes two passes; fit runs this once per batch.)
inline bool all_finite(const float* p, Index n) { return (ConstArrayMap(p, n) * 0.0f).sum() == 0.0f; }

}  // namespace loom
