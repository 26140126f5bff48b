#pragma once
// How many threads loom uses: the OpenMP thread count. Eigen's own product
// threads are off (see parallel.hpp); loom spreads fixed blocks of work over
// OpenMP threads. Results are bitwise reproducible for a given seed and
// thread count.
//
// Thread safety: call before training, not while another thread computes.

#include <omp.h>

#include <Eigen/Core>
#include <string>

#include "loom/error.hpp"

namespace loom {

inline void set_threads(int n) {
  if (n <= 0) throw UsageError("set_threads: the thread count must be positive, got " + std::to_string(n));
  omp_set_num_threads(n);
}

inline int threads() { return omp_get_max_threads(); }

}  // namespace loom
