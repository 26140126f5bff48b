#pragma once
// A learning-rate schedule: the rate an optimizer uses at each step, asked
// for by the optimizer itself (every optimizer takes one as its `schedule`
// option, in place of the constant learning_rate), as Keras's
// LearningRateSchedule. Steps count from 0: the first update uses rate(0).
//
// A schedule may also follow the epochs: fit calls Optimizer::end_epoch with
// the validation loss (the training loss without validation), which reaches
// end_epoch here. ReduceOnPlateau uses it and keeps state; the others are
// functions of the step alone.
//
// Saving: kind() and options() (every option as a double, in an order each
// schedule documents) go into the model file's COMP section, state() into
// OPTS, so a resumed run continues with the same rates (docs/model-format.md).
//
// Thread safety: rate() is const; end_epoch and set_state mutate (one thread).

#include <cmath>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "loom/error.hpp"
#include "loom/optimizers/check_option.hpp"

namespace loom {

class LearningRateSchedule {
 public:
  virtual ~LearningRateSchedule() = default;
  /// "OneCycle": the name in model files.
  virtual std::string_view kind() const = 0;
  /// The rate of step `step` (0 for the first update).
  virtual double rate(long long step) const = 0;
  /// The end of an epoch, with the monitored loss; most schedules ignore it.
  virtual void end_epoch(double /*monitored*/) {}
  virtual std::unique_ptr<LearningRateSchedule> clone() const = 0;

  /// The options, in the order the schedule's constructor from a list takes them.
  virtual std::vector<double> options() const = 0;
  /// What changes as training goes (empty for schedules of the step alone).
  virtual std::vector<double> state() const { return {}; }
  /// Restores state(); a state of another length is a UsageError.
  virtual void set_state(std::span<const double> s) {
    if (!s.empty()) throw UsageError(std::string(kind()) + ": has no state, given " + std::to_string(s.size()) + " values");
  }
};

namespace detail {
// Options saved as doubles, back: exactly `count` of them, else UsageError.
inline void check_option_count(std::span<const double> o, std::size_t count, std::string_view kind) {
  if (o.size() != count)
    throw UsageError(std::string(kind) + ": takes " + std::to_string(count) + " options, given " + std::to_string(o.size()));
}
inline void check_rate(double v, std::string_view owner, std::string_view option) {
  check_option(std::isfinite(v) && v > 0, owner, option, v, "be positive");
}
}  // namespace detail

}  // namespace loom
