#pragma once
// Synthetic inputs for the benchmarks, so that no data files are needed.

#include <algorithm>
#include <vector>

#include "loom/loom.hpp"

namespace loom::bench {

// (n, shape) filled with uniform values in [lo, hi).
inline Tensor random_batch(Index n, const Shape& s, Random& rng, float lo, float hi) {
  Tensor t(n, s.height(), s.width(), s.channels());
  for (Index i = 0; i < t.size(); ++i) t.data()[i] = rng.uniform(lo, hi);
  return t;
}

// Images of max(0, uniform(-1, 1)) values: about half of them 0, as in
// Fashion-MNIST's background and in a ReLU's output. Realistic zeros matter:
// some costs (max-pool branches, ReLU) depend on the data.
inline Tensor random_images(Index n, const Shape& s, Random& rng) {
  Tensor t = random_batch(n, s, rng, -1.0f, 1.0f);
  for (Index i = 0; i < t.size(); ++i) t.data()[i] = std::max(0.0f, t.data()[i]);
  return t;
}

inline std::vector<Label> random_labels(Index n, Index classes, Random& rng) {
  std::vector<Label> y(static_cast<std::size_t>(n));
  for (Label& l : y) l = static_cast<Label>(rng.below(static_cast<std::uint64_t>(classes)));
  return y;
}

}  // namespace loom::bench
