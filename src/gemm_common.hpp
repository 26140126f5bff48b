#pragma once
// What loom's float and bfloat16 products share (src/gemm.cpp,
// src/gemm_bf16.cpp): the shape check, packing scratch, when a product is
// worth a team of threads, and the split of C into stripes.

#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>

#include "loom/error.hpp"
#include "loom/gemm.hpp"

namespace loom::gemm::detail {

inline void check_shapes(const View& c, const ConstView& a, const ConstView& b) {
  if (a.cols != b.rows || c.rows != a.rows || c.cols != b.cols)
    throw ShapeError("gemm: cannot multiply (" + std::to_string(a.rows) + ", " + std::to_string(a.cols) + ") by (" +
                     std::to_string(b.rows) + ", " + std::to_string(b.cols) + ") into (" + std::to_string(c.rows) +
                     ", " + std::to_string(c.cols) + ")");
}

// Per-thread packing buffers of T, 64-byte aligned, grown on demand.
template <typename T>
class Scratch {
 public:
  T* get(Index n) {
    if (n > size_) {
      storage_.reset(new T[static_cast<std::size_t>(n) + 64 / sizeof(T)]);
      size_ = n;
    }
    auto p = reinterpret_cast<std::uintptr_t>(storage_.get());
    return reinterpret_cast<T*>((p + 63) & ~std::uintptr_t{63});
  }

 private:
  std::unique_ptr<T[]> storage_;
  Index size_ = 0;
};

// Whether a product of m x n x k multiply-adds is worth a team of threads.
inline bool worth_a_team(Index m, Index n, Index k) {
  return m * n * k >= (Index{1} << 18) && !omp_in_parallel() && omp_get_max_threads() > 1;
}

// fn(begin, end) on each thread's stripe of [0, length), in whole units.
template <typename Fn>
void in_stripes(Index length, Index unit, Fn&& fn) {
#pragma omp parallel
  {
    const Index t = omp_get_thread_num(), threads = omp_get_num_threads();
    const Index units = (length + unit - 1) / unit;
    const Index begin = std::min(length, units * t / threads * unit);
    const Index end = std::min(length, units * (t + 1) / threads * unit);
    if (begin < end) fn(begin, end);
  }
}

}  // namespace loom::gemm::detail
