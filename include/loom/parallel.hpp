#pragma once
// Elementwise work over long arrays, split into fixed blocks that OpenMP
// spreads over the threads when there is enough of it. Each block is an Eigen
// array expression, which Eigen vectorises (a plain loop with std::sqrt or a
// select in it is not always vectorised by the compiler). Blocks are fixed, so
// results do not depend on the thread count.

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

using ArrayMap = Eigen::Map<Eigen::ArrayXf>;
using ConstArrayMap = Eigen::Map<const Eigen::ArrayXf>;

}  // namespace loom
