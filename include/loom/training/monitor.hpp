#pragma once
// The quantity a callback watches ("val_loss", "accuracy", ...) and what
// counts as better, shared by EarlyStopping and ModelCheckpoint (Keras's
// `monitor`, `mode` and `min_delta`).
//
// Thread safety: a plain value.

#include <cmath>
#include <optional>
#include <string>

#include "loom/error.hpp"
#include "loom/training/history.hpp"

namespace loom {

enum class MonitorMode { Auto, Min, Max };  // Auto: Max for accuracies, Min otherwise (Keras)

class Monitor {
 public:
  /// `who` names the callback in errors.
  Monitor(std::string who, std::string name, MonitorMode mode, double min_delta)
      : who_(std::move(who)), name_(canonical(name)) {
    if (name_.empty())
      throw UsageError(who_ + ": unknown monitor \"" + name + "\"; use loss, accuracy, val_loss or val_accuracy");
    if (!(min_delta >= 0) || !std::isfinite(min_delta))
      throw UsageError(who_ + ": min_delta must be a non-negative number, got " + detail::option_value_text(min_delta));
    maximise_ = mode == MonitorMode::Max || (mode == MonitorMode::Auto && name_.find("accuracy") != std::string::npos);
    min_delta_ = min_delta;
  }

  const std::string& name() const { return name_; }
  bool maximises() const { return maximise_; }
  bool needs_validation() const { return name_.starts_with("val_"); }

  /// Refuses a run whose records will never hold the monitored value.
  void check_run(bool validates) const {
    if (needs_validation() && !validates)
      throw UsageError(who_ + " monitors " + name_ +
                       ", but fit has no validation data: give validation_split or validation_data, or monitor " +
                       name_.substr(4));
  }

  double value(const EpochRecord& r) const {
    if (name_ == "loss") return r.loss;
    if (name_ == "accuracy") return r.accuracy;
    const std::optional<double>& v = name_ == "val_loss" ? r.val_loss : r.val_accuracy;
    if (!v) throw UsageError(who_ + ": epoch " + std::to_string(r.epoch) + " has no " + name_);
    return *v;
  }

  /// Whether `current` beats `best` by more than min_delta; anything beats no best yet.
  /// A NaN never improves.
  bool improves(double current, const std::optional<double>& best) const {
    if (std::isnan(current)) return false;
    if (!best) return true;
    return maximise_ ? current - min_delta_ > *best : current + min_delta_ < *best;
  }

 private:
  static std::string canonical(const std::string& n) {
    if (n == "loss" || n == "val_loss") return n;
    if (n == "accuracy" || n == "acc") return "accuracy";
    if (n == "val_accuracy" || n == "val_acc") return "val_accuracy";
    return {};
  }

  std::string who_;
  std::string name_;
  bool maximise_ = false;
  double min_delta_ = 0.0;
};

}  // namespace loom
