#pragma once
// StepDecay: the rate times gamma every step_size steps,
//   rate(t) = initial_learning_rate * gamma^floor(t / step_size),
// PyTorch's StepLR counted in optimizer steps (Keras: ExponentialDecay with
// staircase = true). Options in files: initial_learning_rate, step_size, gamma.

#include <cmath>
#include <memory>

#include "loom/schedules/learning_rate_schedule.hpp"

namespace loom {

struct StepDecayOptions {
  double initial_learning_rate = 1e-3;
  long long step_size = 1000;
  double gamma = 0.1;
};

class StepDecay final : public LearningRateSchedule {
 public:
  explicit StepDecay(StepDecayOptions o = {}) : o_(o) {
    detail::check_rate(o.initial_learning_rate, "StepDecay", "initial_learning_rate");
    detail::check_option(o.step_size > 0, "StepDecay", "step_size", static_cast<double>(o.step_size), "be positive");
    detail::check_option(o.gamma > 0 && o.gamma <= 1, "StepDecay", "gamma", o.gamma, "be in (0, 1]");
  }
  std::string_view kind() const override { return "StepDecay"; }
  double rate(long long step) const override {
    return o_.initial_learning_rate * std::pow(o_.gamma, static_cast<double>(step / o_.step_size));
  }
  std::unique_ptr<LearningRateSchedule> clone() const override { return std::make_unique<StepDecay>(*this); }
  std::vector<double> options() const override {
    return {o_.initial_learning_rate, static_cast<double>(o_.step_size), o_.gamma};
  }

 private:
  StepDecayOptions o_;
};

}  // namespace loom
