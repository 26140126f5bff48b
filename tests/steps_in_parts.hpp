#pragma once
// The check every optimizer that steps_in_parts must pass: data-parallel
// training's sharded step, where each rank updates only its block of the
// parameters laid end to end, gives every value the bits of whole steps.
// Blocks cut two tensors at odd places, inside and across vector widths.

#include <catch2/catch.hpp>

#include <cmath>
#include <span>
#include <vector>

#include "loom/optimizers/optimizer.hpp"

namespace loom::testing {

/// make() gives a fresh optimizer; steps it three times whole and in three parts.
template <typename MakeOptimizer>
void require_parts_match_whole(MakeOptimizer make_optimizer) {
  const std::size_t sizes[] = {37, 50};
  const std::size_t bounds[] = {0, 13, 61, 87};
  // The first tensor is a (37, 1) kernel, which decays; the second a bias, which does not.
  auto make = [&] {
    std::vector<Param> ps;
    ps.emplace_back("kernel", std::vector<Index>{static_cast<Index>(sizes[0]), 1});
    ps.emplace_back("bias", std::vector<Index>{static_cast<Index>(sizes[1])});
    for (std::size_t i = 0; i < 2; ++i)
      for (Index j = 0; j < ps[i].size(); ++j) ps[i].value[j] = std::sin(static_cast<float>(j + 40 * i));
    return ps;
  };
  auto pointers = [](std::vector<Param>& ps) { return std::vector<Param*>{&ps[0], &ps[1]}; };
  std::vector<Param> whole = make();
  std::vector<std::vector<Param>> ranks = {make(), make(), make()};
  auto reference = make_optimizer();
  reference.build(pointers(whole));
  REQUIRE(reference.steps_in_parts());
  std::vector<decltype(reference)> parts(3, reference);
  for (int step = 1; step <= 3; ++step) {
    std::vector<float> g(87);
    for (std::size_t k = 0; k < g.size(); ++k)
      g[k] = std::cos(static_cast<float>(k * static_cast<std::size_t>(step))) * (k % 7 == 0 ? 1e-4f : 1.0f);
    std::size_t at = 0;
    for (Param& p : whole)
      for (Index j = 0; j < p.size(); ++j) p.grad[j] = g[at++];
    reference.step(pointers(whole));
    for (std::size_t r = 0; r < 3; ++r)
      parts[r].step_part(pointers(ranks[r]), static_cast<Index>(bounds[r]),
                         std::span<const float>(g).subspan(bounds[r], bounds[r + 1] - bounds[r]));
    // The allgather: every rank takes each block from the rank that updated it.
    for (std::size_t r = 0; r < 3; ++r)
      for (std::size_t k = bounds[r]; k < bounds[r + 1]; ++k)
        for (std::vector<Param>& other : ranks) {
          const std::size_t i = k < sizes[0] ? 0 : 1, j = k < sizes[0] ? k : k - sizes[0];
          other[i].value[static_cast<Index>(j)] = ranks[r][i].value[static_cast<Index>(j)];
        }
    for (std::vector<Param>& mine : ranks)
      for (std::size_t i = 0; i < 2; ++i) REQUIRE(mine[i].value == whole[i].value);
  }
  // Each rank's slots are current in its own block.
  const Optimizer::State whole_state = reference.state();
  for (std::size_t r = 0; r < 3; ++r) {
    const Optimizer::State mine = parts[r].state();
    CHECK(mine.steps == 3);
    REQUIRE(mine.slots.size() == whole_state.slots.size());
    for (std::size_t s = 0; s < mine.slots.size(); ++s)
      for (std::size_t k = bounds[r]; k < bounds[r + 1]; ++k) {
        const std::size_t i = k < sizes[0] ? 0 : 1;
        if (s % 2 != i) continue;
        const Index j = static_cast<Index>(k < sizes[0] ? k : k - sizes[0]);
        REQUIRE(mine.slots[s][j] == whole_state.slots[s][j]);
      }
  }
}

}  // namespace loom::testing
