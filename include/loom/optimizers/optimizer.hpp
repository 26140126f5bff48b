#pragma once
// The optimizer interface. An optimizer updates a fixed list of parameters
// (the model's, in layer order) from their gradients, once per step. Its state
// is indexed by position in that list, never by address, so it can be saved
// and restored with the model.
//
// Thread safety: not thread-safe; one training loop at a time.

#include <memory>
#include <span>
#include <string_view>
#include <vector>

#include "loom/layer.hpp"

namespace loom {

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  virtual std::string_view kind() const = 0;
  /// Sizes the state for these parameters; called once by Sequential::compile.
  virtual void build(std::span<Param* const> params) = 0;
  /// One update of every parameter from its grad.
  virtual void step(std::span<Param* const> params) = 0;
  virtual std::unique_ptr<Optimizer> clone() const = 0;

  /// What resuming needs to continue bit for bit: the step count and the
  /// per-parameter slot vectors, in an order the optimizer defines (Adam: every
  /// first moment in parameter order, then every second moment).
  struct State {
    long long steps = 0;
    std::vector<Eigen::VectorXf> slots;
  };
  virtual State state() const = 0;
  /// Restores a state taken from an optimizer built for the same parameters;
  /// a state of the wrong layout is a UsageError.
  virtual void set_state(State s) = 0;
};

}  // namespace loom
