#pragma once
// The score every backend reports: q.x in double precision, in a fixed order
// (four running sums), rounded to float. ExactSearch scores its survivors
// with it and IvfIndex rescores its candidates with it, so both give an item
// the same score, to the last bit.

#include "loom/tensor.hpp"

namespace loom::search {

inline float exact_score(const float* q, const float* x, Index d) {
  double s[4] = {0.0, 0.0, 0.0, 0.0};
  Index j = 0;
  for (; j + 4 <= d; j += 4)
    for (Index l = 0; l < 4; ++l) s[l] += static_cast<double>(q[j + l]) * x[j + l];
  for (; j < d; ++j) s[0] += static_cast<double>(q[j]) * x[j];
  return static_cast<float>((s[0] + s[1]) + (s[2] + s[3]));
}

}  // namespace loom::search
