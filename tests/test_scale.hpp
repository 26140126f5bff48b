#pragma once
// How much real data the tests that train on it use. All of it by default;
// a fraction under the sanitizers, which make training 10-50x slower:
// scripts/sanitize.sh sets LOOM_TEST_DATA_SCALE=0.1.
//
//   const Dataset train = fashion_mnist::load_train(dir).head(scaled(6000));
//   if (full_data()) CHECK(accuracy >= 0.75);  // a bar that holds only with all the data
//
// A scaled run still runs every code path; only assertions whose bar depends
// on the amount of data may relax, and each test says how.

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <string>

#include "loom/error.hpp"
#include "loom/tensor.hpp"

namespace loom::testing {

/// LOOM_TEST_DATA_SCALE, a number in (0, 1]; 1 when unset or empty.
inline double data_scale() {
  const char* env = std::getenv("LOOM_TEST_DATA_SCALE");
  if (!env || !*env) return 1.0;
  char* end = nullptr;
  const double s = std::strtod(env, &end);
  if (*end != '\0' || !(s > 0.0 && s <= 1.0))
    throw UsageError(std::string("LOOM_TEST_DATA_SCALE must be a number in (0, 1], got \"") + env + "\"");
  return s;
}

/// True when the tests run on all their data (no LOOM_TEST_DATA_SCALE below 1).
inline bool full_data() { return data_scale() == 1.0; }

/// n samples scaled by data_scale(), rounded up, and never fewer than at_least (nor more than n).
inline Index scaled(Index n, Index at_least = 1) {
  const auto s = static_cast<Index>(std::ceil(static_cast<double>(n) * data_scale()));
  return std::min(n, std::max(s, at_least));
}

}  // namespace loom::testing
