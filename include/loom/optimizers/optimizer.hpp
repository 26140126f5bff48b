#pragma once
// The optimizer interface. An optimizer updates a fixed list of parameters
// (the model's, in layer order) from their gradients, once per step. Its state
// is indexed by position in that list, never by address, so it can be saved
// and restored with the model.
//
// Thread safety: not thread-safe; one training loop at a time.

#include <algorithm>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "loom/error.hpp"
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

  /// Whether step_part is implemented (data-parallel training then has each
  /// rank update only its part of the parameters, ZeRO-1 style, and gathers
  /// the rest). Such an optimizer's state() must be groups of one slot per
  /// parameter, in parameter order, each the size of its parameter: the
  /// parts of every group are gathered from the ranks before a checkpoint.
  virtual bool steps_in_parts() const { return false; }
  /// The same step as step(params) for the values [first, first + grad.size())
  /// of the parameters laid end to end, in order, only (the step count
  /// advances as in step), with grad their gradients; the parameters' own
  /// grads are not read. Each value gets the same bits as from step().
  virtual void step_part(std::span<Param* const> params, Index first, std::span<const float> grad);
  virtual std::unique_ptr<Optimizer> clone() const = 0;

  /// The end of a training epoch, with the loss to monitor (fit gives the
  /// validation loss, or the training loss without validation): reaches the
  /// optimizer's learning-rate schedule (ReduceOnPlateau acts on it). No-op
  /// by default.
  virtual void end_epoch(double /*monitored*/) {}

  /// What resuming needs to continue bit for bit: the step count and the
  /// per-parameter slot vectors, in an order the optimizer defines (Adam: every
  /// first moment in parameter order, then every second moment).
  struct State {
    long long steps = 0;
    std::vector<Eigen::VectorXf> slots;
    std::vector<double> schedule;  // the learning-rate schedule's state (ReduceOnPlateau's), if any
  };
  virtual State state() const = 0;
  /// Restores a state taken from an optimizer built for the same parameters;
  /// a state of the wrong layout is a UsageError.
  virtual void set_state(State s) = 0;
};

/// f(i, offset, count, at) for each piece of array i (0 <= i < arrays, of
/// size(i) values) inside [first, last) of the arrays laid end to end, in
/// order: offset is where the piece starts in array i, at where end to end.
/// Optimizer::step_part's parameters and data-parallel training's flat buffer
/// both cut the parameters this way.
template <typename Size, typename F>
void for_pieces_end_to_end(std::size_t arrays, Size&& size, Index first, Index last, F&& f) {
  Index start = 0;
  for (std::size_t i = 0; i < arrays && start < last; start += size(i), ++i) {
    const Index from = std::max(first, start), to = std::min(last, start + size(i));
    if (from < to) f(i, from - start, to - from, from);
  }
}

inline void Optimizer::step_part(std::span<Param* const>, Index, std::span<const float>) {
  throw UsageError(std::string(kind()) + " cannot step on a part of the parameters (steps_in_parts() is false)");
}

}  // namespace loom
