#pragma once
// EarlyStopping: stops training when a monitored quantity has stopped
// improving, as Keras's callback of that name (same options and defaults).
//
// After every epoch: an epoch whose value beats the best by more than
// min_delta becomes the best (and resets the patience count, if it also
// beats the baseline); otherwise the count grows, and training stops once it
// reaches patience. With restore_best_weights, the weights of the best epoch
// are put back when training stops here (as Keras 2: a run that ends its
// epochs without stopping keeps its last weights). Epochs before
// start_from_epoch are not watched (a warm-up).
//
// Its state (best value, count, best weights) is kept in fit's checkpoints.
//
// Thread safety: one fit at a time.

#include <cmath>
#include <optional>
#include <string>
#include <vector>

#include "loom/sequential.hpp"
#include "loom/training/callback.hpp"
#include "loom/training/monitor.hpp"
#include "loom/training/weight_copies.hpp"

namespace loom {

struct EarlyStoppingOptions {
  std::string monitor = "val_loss";
  double min_delta = 0.0;
  int patience = 0;
  MonitorMode mode = MonitorMode::Auto;
  std::optional<double> baseline;  // the value to beat before the count is reset (not NaN)
  bool restore_best_weights = false;
  int start_from_epoch = 0;  // epochs (1-based) up to this one are not watched
};

class EarlyStopping final : public Callback {
 public:
  explicit EarlyStopping(EarlyStoppingOptions o = {})
      : o_(std::move(o)), monitor_("EarlyStopping", o_.monitor, o_.mode, o_.min_delta) {
    if (o_.patience < 0) throw UsageError("EarlyStopping: patience must not be negative, got " + std::to_string(o_.patience));
    if (o_.start_from_epoch < 0)
      throw UsageError("EarlyStopping: start_from_epoch must not be negative, got " + std::to_string(o_.start_from_epoch));
    if (o_.baseline && std::isnan(*o_.baseline))  // no value would ever beat it
      throw UsageError("EarlyStopping: baseline must be a number, got " + detail::option_value_text(*o_.baseline));
  }

  /// The epoch training stopped after (0: it did not stop here).
  int stopped_epoch() const { return stopped_epoch_; }
  /// The best epoch so far and its value (0 and none before any).
  int best_epoch() const { return best_epoch_; }
  std::optional<double> best() const { return best_; }

  void on_train_begin(TrainingContext& c) override {
    monitor_.check_run(c.validates());
    if (c.history().empty()) *this = EarlyStopping(o_);  // a new run, not a resumed one
  }

  void on_epoch_end(const EpochRecord& r, TrainingContext& c) override {
    if (r.epoch <= o_.start_from_epoch) return;
    const double current = monitor_.value(r);
    ++wait_;
    if (monitor_.improves(current, best_)) {
      best_ = current;
      best_epoch_ = r.epoch;
      if (o_.restore_best_weights) keep_weights(c.model());
      if (!o_.baseline || monitor_.improves(current, o_.baseline)) wait_ = 0;
      return;
    }
    if (wait_ >= o_.patience) {
      stopped_epoch_ = r.epoch;
      std::string reason = monitor_.name() + " did not improve for " + std::to_string(wait_) + " epochs";
      if (best_) reason += " (best " + std::to_string(*best_) + " at epoch " + std::to_string(best_epoch_) + ")";
      if (o_.restore_best_weights && !best_weights_.empty()) {
        put_weights_back(c.model());
        reason += "; restored the weights of epoch " + std::to_string(best_epoch_);
      }
      c.stop_training(reason);
    }
  }

  CallbackState state() const override {
    return {{best_ ? 1.0 : 0.0, best_.value_or(0.0), static_cast<double>(best_epoch_), static_cast<double>(wait_),
             static_cast<double>(stopped_epoch_)},
            best_weights_,
            {}};
  }
  void set_state(const CallbackState& s) override {
    if (s.numbers.size() != 5) throw UsageError("EarlyStopping: a saved state has 5 numbers, got " + std::to_string(s.numbers.size()));
    best_ = s.numbers[0] != 0 ? std::optional<double>(s.numbers[1]) : std::nullopt;
    best_epoch_ = static_cast<int>(s.numbers[2]);
    wait_ = static_cast<int>(s.numbers[3]);
    stopped_epoch_ = static_cast<int>(s.numbers[4]);
    best_weights_ = s.arrays;
  }

 private:
  void keep_weights(Sequential& m) { best_weights_ = detail::weight_values(m); }
  void put_weights_back(Sequential& m) { detail::put_weight_values(m, best_weights_, "EarlyStopping"); }

  EarlyStoppingOptions o_;
  Monitor monitor_;
  std::optional<double> best_;
  int best_epoch_ = 0, wait_ = 0, stopped_epoch_ = 0;
  std::vector<Eigen::VectorXf> best_weights_;
};

}  // namespace loom
