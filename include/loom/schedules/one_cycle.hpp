#pragma once
// OneCycle: Smith's one-cycle policy, as PyTorch's OneCycleLR with
// anneal_strategy "cos" and two phases (momentum is not cycled):
//   initial = max_learning_rate / div_factor, final = initial / final_div_factor
//   phase 1, steps 0 .. e1 = pct_start * total_steps - 1: initial -> max
//   phase 2, up to e2 = total_steps - 1:                   max -> final
//   within a phase from a to b at fraction p: b + (a - b) / 2 * (1 + cos(pi p))
// Steps past the last one keep the final rate (PyTorch refuses them).
// Options in files: max_learning_rate, total_steps, pct_start, div_factor,
// final_div_factor.

#include <cmath>
#include <memory>
#include <numbers>

#include "loom/schedules/learning_rate_schedule.hpp"

namespace loom {

struct OneCycleOptions {
  double max_learning_rate = 1e-2;
  long long total_steps = 0;  // required: epochs * steps per epoch
  double pct_start = 0.3;
  double div_factor = 25.0;
  double final_div_factor = 1e4;
};

class OneCycle final : public LearningRateSchedule {
 public:
  explicit OneCycle(OneCycleOptions o) : o_(o) {
    detail::check_rate(o.max_learning_rate, "OneCycle", "max_learning_rate");
    detail::check_option(o.total_steps > 0, "OneCycle", "total_steps", static_cast<double>(o.total_steps),
                         "be positive");
    detail::check_option(o.pct_start > 0 && o.pct_start < 1, "OneCycle", "pct_start", o.pct_start, "be in (0, 1)");
    detail::check_option(std::isfinite(o.div_factor) && o.div_factor >= 1, "OneCycle", "div_factor", o.div_factor,
                         "be at least 1");
    detail::check_option(std::isfinite(o.final_div_factor) && o.final_div_factor >= 1, "OneCycle", "final_div_factor",
                         o.final_div_factor, "be at least 1");
  }
  std::string_view kind() const override { return "OneCycle"; }
  double initial_learning_rate() const { return o_.max_learning_rate / o_.div_factor; }
  double final_learning_rate() const { return initial_learning_rate() / o_.final_div_factor; }

  double rate(long long step) const override {
    const double t = static_cast<double>(step);
    const double e1 = o_.pct_start * static_cast<double>(o_.total_steps) - 1.0;
    const double e2 = static_cast<double>(o_.total_steps) - 1.0;
    if (t <= e1) return anneal(initial_learning_rate(), o_.max_learning_rate, fraction(t, 0.0, e1));
    return anneal(o_.max_learning_rate, final_learning_rate(), fraction(std::min(t, e2), e1, e2));
  }
  std::unique_ptr<LearningRateSchedule> clone() const override { return std::make_unique<OneCycle>(*this); }
  std::vector<double> options() const override {
    return {o_.max_learning_rate, static_cast<double>(o_.total_steps), o_.pct_start, o_.div_factor,
            o_.final_div_factor};
  }

 private:
  // A phase of no length is over at its first step.
  static double fraction(double t, double start, double end) { return end > start ? (t - start) / (end - start) : 1.0; }
  static double anneal(double from, double to, double p) {
    return to + (from - to) / 2.0 * (std::cos(std::numbers::pi * p) + 1.0);
  }

  OneCycleOptions o_;
};

}  // namespace loom
