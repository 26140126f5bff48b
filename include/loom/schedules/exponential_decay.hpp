#pragma once
// ExponentialDecay, as Keras's:
//   rate(t) = initial_learning_rate * decay_rate^(t / decay_steps)
// with t / decay_steps floored when staircase. Options in files:
// initial_learning_rate, decay_steps, decay_rate, staircase (0 or 1).

#include <cmath>
#include <memory>

#include "loom/schedules/learning_rate_schedule.hpp"

namespace loom {

struct ExponentialDecayOptions {
  double initial_learning_rate = 1e-3;
  long long decay_steps = 1000;
  double decay_rate = 0.96;
  bool staircase = false;
};

class ExponentialDecay final : public LearningRateSchedule {
 public:
  explicit ExponentialDecay(ExponentialDecayOptions o = {}) : o_(o) {
    detail::check_rate(o.initial_learning_rate, "ExponentialDecay", "initial_learning_rate");
    detail::check_option(o.decay_steps > 0, "ExponentialDecay", "decay_steps", static_cast<double>(o.decay_steps),
                         "be positive");
    detail::check_option(std::isfinite(o.decay_rate) && o.decay_rate > 0, "ExponentialDecay", "decay_rate",
                         o.decay_rate, "be positive");
  }
  std::string_view kind() const override { return "ExponentialDecay"; }
  double rate(long long step) const override {
    double p = static_cast<double>(step) / static_cast<double>(o_.decay_steps);
    if (o_.staircase) p = std::floor(p);
    return o_.initial_learning_rate * std::pow(o_.decay_rate, p);
  }
  std::unique_ptr<LearningRateSchedule> clone() const override { return std::make_unique<ExponentialDecay>(*this); }
  std::vector<double> options() const override {
    return {o_.initial_learning_rate, static_cast<double>(o_.decay_steps), o_.decay_rate, o_.staircase ? 1.0 : 0.0};
  }

 private:
  ExponentialDecayOptions o_;
};

}  // namespace loom
