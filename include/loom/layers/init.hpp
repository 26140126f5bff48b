#pragma once
// Keras default initialisers. Biases start at zero (Param does that).
//
// Thread safety: each call draws from the Random it is given; one thread per generator.

#include <cmath>

#include "loom/random.hpp"
#include "loom/tensor.hpp"

namespace loom {

/// Glorot (Xavier) uniform: U(-l, l) with l = sqrt(6 / (fan_in + fan_out)).
/// For a convolution, fan_in = KH*KW*C and fan_out = KH*KW*F, as in Keras.
inline void glorot_uniform(Eigen::VectorXf& w, Index fan_in, Index fan_out, Random& rng) {
  const float limit = std::sqrt(6.0f / static_cast<float>(fan_in + fan_out));
  for (Index i = 0; i < w.size(); ++i) w[i] = rng.uniform(-limit, limit);
}

}  // namespace loom
