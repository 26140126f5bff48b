#pragma once
// loom's threading. Eigen's own product threads are off (the CMake target
// defines EIGEN_DONT_PARALLELIZE): they cost more than they give on the small
// products of a CNN, by as much as 3x on one image's inference. loom instead
// spreads fixed blocks of work (samples, array blocks, stripes of a product:
// loom/gemm.hpp) over OpenMP threads, each block computed single-threaded,
// handed out by BlockSchedule (block_schedule.hpp): static blocks whose last
// indices an idle thread takes.
//
// Elementwise work over long arrays is split into fixed blocks that OpenMP
// spreads over the threads when there is enough of it. Each block is an Eigen
// array expression, which Eigen vectorises (a plain loop with std::sqrt or a
// select in it is not always vectorised by the compiler). Blocks are fixed, so
// results do not depend on the thread count.
//
// Thread safety: callable from many threads at once; f must be safe on disjoint blocks.

#include <omp.h>

#include <algorithm>

#include "loom/block_schedule.hpp"
#include "loom/tensor.hpp"

namespace loom {

/// Whether work worth spreading should get a team: more than one piece, and
/// not inside a parallel region already (whose nested regions get one thread).
inline bool spreads(Index n, bool spread) { return spread && n > 1 && !omp_in_parallel(); }

enum class Schedule {
  Blocks,   // each thread its static block, then the others' last indices (block_schedule.hpp)
  Dynamic,  // an index at a time to whichever thread asks
};

/// parallel_for where each thread needs scratch of its own: f(i, scratch),
/// with one default-constructed Scratch per thread (one in all on the calling
/// thread when not spread).
template <typename Scratch, Schedule kSchedule = Schedule::Blocks, typename F>
void parallel_for_with(Index n, bool spread, F&& f) {
  if (spreads(n, spread)) {
    if constexpr (kSchedule == Schedule::Blocks) {
      if (BlockSchedule::fits(n)) {
        BlockSchedule blocks(n, omp_get_max_threads());
#pragma omp parallel
        {
          Scratch scratch;
          blocks.run([&](Index i) { f(i, scratch); });
        }
        return;
      }
    }
#pragma omp parallel
    {
      Scratch scratch;
#pragma omp for schedule(dynamic)
      for (Index i = 0; i < n; ++i) f(i, scratch);
    }
  } else {
    Scratch scratch;
    for (Index i = 0; i < n; ++i) f(i, scratch);
  }
}

/// Calls f(i) for every i in [0, n): spread over OpenMP's threads
/// (Schedule::Blocks) when `spread` and n > 1, else in a plain loop on the
/// calling thread. Not `#pragma omp parallel for if (spread)`: for that,
/// libgomp still makes a team of one, and ending it wakes a futex, a system
/// call, twice per region (a microsecond each in a virtual machine: a tenth
/// of the seed model's one-image inference, which has six such regions).
template <typename F>
void parallel_for(Index n, bool spread, F&& f) {
  struct None {};
  parallel_for_with<None>(n, spread, [&](Index i, None&) { f(i); });
}

/// Calls f(begin, length) for consecutive blocks covering [0, n).
template <typename F>
void for_blocks(Index n, F&& f) {
  constexpr Index kBlock = Index{1} << 14;  // 64 KB of floats: in L2, worth a thread
  const Index blocks = (n + kBlock - 1) / kBlock;
  parallel_for(blocks, blocks > 4, [&](Index b) { f(b * kBlock, std::min(kBlock, n - b * kBlock)); });
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
  parallel_for(blocks, blocks > 1 && m.size() >= (Index{1} << 16), [&](Index b) {
    parts.col(b).noalias() = m.middleRows(b * kRows, std::min(kRows, m.rows() - b * kRows)).colwise().sum().transpose();
  });
  sums = parts.col(0);
  for (Index b = 1; b < blocks; ++b) sums += parts.col(b);
}

/// out (rows, cols) = the sum of `count` parts, part c being rows
/// [c * stride, c * stride + rows) of `parts`, added in part order: the
/// reduction of per-chunk partial sums. Rows are spread over the threads (it
/// was a serial loop while the other threads waited: 64 parts of a (288, 32)
/// kernel gradient); each row is still summed in part order, so the result
/// does not depend on the thread count.
template <typename Parts, typename Out>
void sum_parts_in_order(const Parts& parts, Index stride, Index count, Out&& out) {
  constexpr Index kRows = 32;
  const Index rows = out.rows(), blocks = (rows + kRows - 1) / kRows;
  parallel_for(blocks, blocks > 1 && rows * out.cols() * count >= (Index{1} << 15), [&](Index b) {
    const Index r0 = b * kRows, len = std::min(kRows, rows - r0);
    auto o = out.middleRows(r0, len);
    o = parts.block(r0, 0, len, out.cols());
    for (Index c = 1; c < count; ++c) o += parts.block(c * stride + r0, 0, len, out.cols());
  });
}

using ArrayMap = Eigen::Map<Eigen::ArrayXf>;
using ConstArrayMap = Eigen::Map<const Eigen::ArrayXf>;

/// One vectorised pass: x * 0 is 0 for every finite x and NaN for NaN and
/// infinities, so the sum is 0 exactly when all are finite. (Eigen's
/// allFinite makes two passes; fit runs this once per batch.)
inline bool all_finite(const float* p, Index n) { return (ConstArrayMap(p, n) * 0.0f).sum() == 0.0f; }

}  // namespace loom
