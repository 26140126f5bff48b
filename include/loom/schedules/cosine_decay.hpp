#pragma once
// CosineDecay with an optional linear warm-up, as Keras's CosineDecay:
//   warm-up, t < warmup_steps (only with a warmup_target):
//     rate(t) = initial + (warmup_target - initial) * t / warmup_steps
//   then, s = min(t - warmup_steps, decay_steps), from = warmup_target (or initial):
//     rate(t) = from * ((1 - alpha) * 0.5 * (1 + cos(pi s / decay_steps)) + alpha)
// Options in files: initial_learning_rate, decay_steps, alpha, warmup_steps,
// warmup_target (NaN: none).

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <numbers>
#include <optional>

#include "loom/schedules/learning_rate_schedule.hpp"

namespace loom {

struct CosineDecayOptions {
  double initial_learning_rate = 1e-3;
  long long decay_steps = 1000;
  double alpha = 0.0;                   // the final rate, as a fraction of the peak
  long long warmup_steps = 0;
  std::optional<double> warmup_target;  // the peak after warm-up; none: no warm-up
};

class CosineDecay final : public LearningRateSchedule {
 public:
  explicit CosineDecay(CosineDecayOptions o = {}) : o_(o) {
    // Warming up may start from 0 (Keras's usual form); without warm-up the rate must be positive.
    detail::check_option(std::isfinite(o.initial_learning_rate) &&
                             (o.warmup_target ? o.initial_learning_rate >= 0 : o.initial_learning_rate > 0),
                         "CosineDecay", "initial_learning_rate", o.initial_learning_rate,
                         o.warmup_target ? "not be negative" : "be positive");
    detail::check_option(o.decay_steps > 0, "CosineDecay", "decay_steps", static_cast<double>(o.decay_steps),
                         "be positive");
    detail::check_option(o.alpha >= 0 && o.alpha <= 1, "CosineDecay", "alpha", o.alpha, "be in [0, 1]");
    detail::check_option(o.warmup_steps >= 0, "CosineDecay", "warmup_steps", static_cast<double>(o.warmup_steps),
                         "not be negative");
    if (o.warmup_target) detail::check_rate(*o.warmup_target, "CosineDecay", "warmup_target");
    detail::check_option(o.warmup_steps == 0 || o.warmup_target.has_value(), "CosineDecay", "warmup_steps",
                         static_cast<double>(o.warmup_steps), "be 0 without a warmup_target");
  }
  std::string_view kind() const override { return "CosineDecay"; }
  double rate(long long step) const override {
    const double warmup = static_cast<double>(o_.warmup_steps);
    const double t = static_cast<double>(step);
    if (o_.warmup_target && t < warmup)
      return (*o_.warmup_target - o_.initial_learning_rate) * (t / warmup) + o_.initial_learning_rate;
    const double decay_steps = static_cast<double>(o_.decay_steps);
    const double s = std::min(t - warmup, decay_steps) / decay_steps;
    const double cosine = 0.5 * (1.0 + std::cos(std::numbers::pi * s));
    return o_.warmup_target.value_or(o_.initial_learning_rate) * ((1.0 - o_.alpha) * cosine + o_.alpha);
  }
  std::unique_ptr<LearningRateSchedule> clone() const override { return std::make_unique<CosineDecay>(*this); }
  std::vector<double> options() const override {
    return {o_.initial_learning_rate, static_cast<double>(o_.decay_steps), o_.alpha,
            static_cast<double>(o_.warmup_steps), o_.warmup_target.value_or(std::numeric_limits<double>::quiet_NaN())};
  }

 private:
  CosineDecayOptions o_;
};

}  // namespace loom
