#pragma once
// A row-major matrix of uniform(-1, 1) values, drawn from its seed: the
// operands of the product tests (test_gemm.cpp, test_gemm_bf16.cpp).

#include <cstdint>

#include "loom/random.hpp"
#include "loom/tensor.hpp"

namespace loom::testing {

inline RowMatrix random_matrix(Index rows, Index cols, std::uint64_t seed) {
  Random rng(seed);
  RowMatrix m(rows, cols);
  for (Index i = 0; i < m.size(); ++i) m.data()[i] = rng.uniform(-1.0f, 1.0f);
  return m;
}

}  // namespace loom::testing
