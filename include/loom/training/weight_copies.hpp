#pragma once
// Copies of a model's weights (every parameter, trainable or not, in
// model-file order), kept by callbacks that put weights back later
// (EarlyStopping's best epoch, ExponentialMovingAverage's average).
//
// Thread safety: none; callbacks run on fit's thread.

#include <string>
#include <vector>

#include <Eigen/Core>

#include "loom/error.hpp"
#include "loom/sequential.hpp"

namespace loom::detail {

/// The values of every weight of m.
inline std::vector<Eigen::VectorXf> weight_values(Sequential& m) {
  std::vector<Eigen::VectorXf> values;
  for (const Param* p : m.weights()) values.push_back(p->value);
  return values;
}

/// Whether `values` has m's weights' count and sizes.
inline bool fits_weights(Sequential& m, const std::vector<Eigen::VectorXf>& values) {
  const std::span<Param* const> w = m.weights();
  if (w.size() != values.size()) return false;
  for (std::size_t i = 0; i < w.size(); ++i)
    if (w[i]->value.size() != values[i].size()) return false;
  return true;
}

/// Puts `values` into m's weights; a UsageError naming `who` when they are another model's.
inline void put_weight_values(Sequential& m, const std::vector<Eigen::VectorXf>& values, const std::string& who) {
  if (!fits_weights(m, values)) throw UsageError(who + ": the kept weights belong to another model");
  const std::span<Param* const> w = m.weights();
  for (std::size_t i = 0; i < w.size(); ++i) w[i]->value = values[i];
}

}  // namespace loom::detail
