#pragma once
// ReduceOnPlateau: the rate times factor when the monitored loss (fit: the
// validation loss, else the training loss) has not improved for `patience`
// epochs, as Keras's ReduceLROnPlateau in mode "min" without cooldown:
//   at each end_epoch(loss):
//     loss < best - min_delta:  best = loss, wait = 0
//     else: wait += 1; when wait >= patience and rate > min_learning_rate:
//           rate = max(rate * factor, min_learning_rate), wait = 0
// A NaN loss is no improvement. State (saved in checkpoints): rate, best, wait.
// Options in files: initial_learning_rate, factor, patience, min_learning_rate, min_delta.

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>

#include "loom/schedules/learning_rate_schedule.hpp"

namespace loom {

struct ReduceOnPlateauOptions {
  double initial_learning_rate = 1e-3;
  double factor = 0.1;
  long long patience = 10;
  double min_learning_rate = 0.0;
  double min_delta = 1e-4;
};

class ReduceOnPlateau final : public LearningRateSchedule {
 public:
  explicit ReduceOnPlateau(ReduceOnPlateauOptions o = {}) : o_(o), rate_(o.initial_learning_rate) {
    detail::check_rate(o.initial_learning_rate, "ReduceOnPlateau", "initial_learning_rate");
    detail::check_option(o.factor > 0 && o.factor < 1, "ReduceOnPlateau", "factor", o.factor, "be in (0, 1)");
    detail::check_option(o.patience >= 0, "ReduceOnPlateau", "patience", static_cast<double>(o.patience),
                         "not be negative");
    detail::check_option(o.min_learning_rate >= 0 && o.min_learning_rate <= o.initial_learning_rate, "ReduceOnPlateau",
                         "min_learning_rate", o.min_learning_rate, "be in [0, initial_learning_rate]");
    detail::check_option(o.min_delta >= 0 && std::isfinite(o.min_delta), "ReduceOnPlateau", "min_delta", o.min_delta,
                         "not be negative");
  }
  std::string_view kind() const override { return "ReduceOnPlateau"; }
  double rate(long long) const override { return rate_; }
  double best() const { return best_; }
  long long wait() const { return wait_; }

  void end_epoch(double loss) override {
    if (loss < best_ - o_.min_delta) {
      best_ = loss;
      wait_ = 0;
      return;
    }
    if (++wait_ >= o_.patience && rate_ > o_.min_learning_rate) {
      rate_ = std::max(rate_ * o_.factor, o_.min_learning_rate);
      wait_ = 0;
    }
  }

  std::unique_ptr<LearningRateSchedule> clone() const override { return std::make_unique<ReduceOnPlateau>(*this); }
  std::vector<double> options() const override {
    return {o_.initial_learning_rate, o_.factor, static_cast<double>(o_.patience), o_.min_learning_rate, o_.min_delta};
  }
  std::vector<double> state() const override { return {rate_, best_, static_cast<double>(wait_)}; }
  void set_state(std::span<const double> s) override {
    detail::check_option_count(s, 3, "ReduceOnPlateau state");
    const bool fits = std::isfinite(s[0]) && s[0] > 0 && !std::isnan(s[1]) && s[2] >= 0 && s[2] < 1e18 && s[2] == std::floor(s[2]);
    if (!fits) throw UsageError("ReduceOnPlateau: state (rate, best, wait) is out of range");
    rate_ = s[0];
    best_ = s[1];
    wait_ = static_cast<long long>(s[2]);
  }

 private:
  ReduceOnPlateauOptions o_;
  double rate_;
  double best_ = std::numeric_limits<double>::infinity();
  long long wait_ = 0;
};

}  // namespace loom
