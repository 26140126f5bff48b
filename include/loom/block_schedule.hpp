#pragma once
// The schedule of parallel_for (parallel.hpp): each thread takes the block of
// indices OpenMP's static schedule would give it, front to back, and a thread
// that runs out takes the last indices of the others' blocks, one at a time.
//
// Why not plain static: on a shared virtual machine a thread is now and then
// held up for milliseconds (the host runs something else on its core), or
// reads its block from the far cache, and the other waits at the region's
// end. In the recipe ResNet's training step the thread that finished first
// waited 5.5-5.7 % of the parallel regions' time with static blocks, 2.6-3.1 %
// with this schedule (docs/benchmarks-history.md). Why not dynamic (an index at a
// time to whoever asks): a thread then runs other samples than in the layer
// before, whose data sit in the other core's cache; taking only the tails
// keeps most of each block where the static schedule put it, and the
// static schedule's order for whatever was not taken.
//
// Which thread runs an index never changes what the index computes: callers
// write each index's results to places of their own (sums in fixed blocks,
// added in order), so results stay independent of the schedule.
//
// Thread safety: a BlockSchedule is shared by one region's threads; claims are atomic.

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cstdint>

#include "loom/tensor.hpp"

namespace loom {

class BlockSchedule {
 public:
  /// Blocks of [0, n) for a team of up to `threads`, as OpenMP's static
  /// schedule splits it (the first n % threads blocks one longer).
  BlockSchedule(Index n, int threads) : blocks_(std::clamp(threads, 1, kMaxBlocks)) {
    const Index q = n / blocks_, r = n % blocks_;
    for (int t = 0; t < blocks_; ++t) {
      const Index begin = t * q + std::min<Index>(t, r), end = begin + q + (t < r ? 1 : 0);
      block_[t].range.store(pack(begin, end), std::memory_order_relaxed);
    }
  }

  /// Whether n indices fit the packed counters.
  static bool fits(Index n) { return n >= 0 && n <= Index{0x7fffffff}; }

  /// Called by every thread of the region: f(i) for its own block's indices
  /// in order, then for the others' last ones until none is left.
  template <typename F>
  void run(F&& f) {
    const int t = omp_get_thread_num();
    if (t < blocks_)
      for (Index i; (i = claim(block_[t], true)) >= 0;) f(i);
    for (int k = 1; k <= blocks_; ++k) {
      Block& other = block_[(t + k) % blocks_];
      for (Index i; (i = claim(other, false)) >= 0;) f(i);
    }
  }

 private:
  static constexpr int kMaxBlocks = 64;  // threads past this only take others' indices

  // A block's next index for its owner (low half) and one past the last a
  // thief may take (high half), in one word: a claim is one compare-and-swap.
  // Each on a cache line of its own, so owners do not contend.
  struct alignas(64) Block {
    std::atomic<std::uint64_t> range;
  };

  static std::uint64_t pack(Index front, Index end) {
    return static_cast<std::uint64_t>(front) | static_cast<std::uint64_t>(end) << 32;
  }

  // The owner claims the front index, a thief the last; -1 when the block is empty.
  static Index claim(Block& b, bool owner) {
    std::uint64_t v = b.range.load(std::memory_order_relaxed);
    for (;;) {
      const Index front = static_cast<Index>(v & 0xffffffffu), end = static_cast<Index>(v >> 32);
      if (front >= end) return -1;
      const std::uint64_t next = owner ? pack(front + 1, end) : pack(front, end - 1);
      if (b.range.compare_exchange_weak(v, next, std::memory_order_relaxed)) return owner ? front : end - 1;
    }
  }

  int blocks_;
  Block block_[kMaxBlocks];
};

}  // namespace loom
