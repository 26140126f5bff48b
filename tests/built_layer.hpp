#pragma once
// A layer built for an input shape with a seeded generator, as Sequential::add
// builds it: the tests of single layers start from one of these.

#include <cstdint>

#include "loom/random.hpp"
#include "loom/tensor.hpp"

namespace loom::testing {

template <typename L>
L built(L layer, const Shape &input, std::uint64_t seed = 1) {
  Random rng(seed);
  layer.build(input, rng);
  return layer;
}

} // namespace loom::testing
