#pragma once
// ModelCheckpoint: saves the model file after every epoch, or only when a
// monitored quantity improved (save_best_only), as Keras's callback. Each
// file is written atomically (io/model_file.hpp): a crash leaves the old file
// or the new one. "{epoch}" in the path becomes the epoch number, so every
// epoch can keep its own file ("model-{epoch}.loom").
//
// This is the model file a user keeps; FitOptions::checkpoint is the file
// fit resumes from. The best value seen is kept in fit's checkpoints, so a
// resumed run saves exactly when an uninterrupted one would.
//
// Thread safety: one fit at a time.

#include <filesystem>
#include <optional>
#include <string>

#include "loom/io/model_file.hpp"
#include "loom/sequential.hpp"
#include "loom/training/callback.hpp"
#include "loom/training/monitor.hpp"

namespace loom {

struct ModelCheckpointOptions {
  std::string monitor = "val_loss";
  MonitorMode mode = MonitorMode::Auto;
  bool save_best_only = false;
  bool include_optimizer_state = true;  // as SaveOptions: needed to train the saved model further
};

class ModelCheckpoint final : public Callback {
 public:
  explicit ModelCheckpoint(std::filesystem::path path, ModelCheckpointOptions o = {})
      : path_(std::move(path)), o_(std::move(o)), monitor_("ModelCheckpoint", o_.monitor, o_.mode, 0.0) {
    if (path_.empty()) throw UsageError("ModelCheckpoint: the path is empty");
  }

  /// The file of an epoch: the path with "{epoch}" replaced by its number.
  std::filesystem::path path_for(int epoch) const {
    std::string p = path_.string();
    for (std::size_t at; (at = p.find("{epoch}")) != std::string::npos;) p.replace(at, 7, std::to_string(epoch));
    return p;
  }
  /// The epoch last saved (0: none yet).
  int saved_epoch() const { return saved_epoch_; }

  void on_train_begin(TrainingContext& c) override {
    if (o_.save_best_only) monitor_.check_run(c.validates());
    if (c.history().empty()) best_.reset(), saved_epoch_ = 0;  // a new run, not a resumed one
    // Refuse a place that cannot be written before the first epoch's work, not after it.
    if (c.leader()) check_writable(path_for(1));
  }

  void on_epoch_end(const EpochRecord& r, TrainingContext& c) override {
    if (o_.save_best_only) {
      const double current = monitor_.value(r);
      if (!monitor_.improves(current, best_)) return;
      best_ = current;
    }
    saved_epoch_ = r.epoch;
    if (c.leader()) c.model().save(path_for(r.epoch), {.include_optimizer_state = o_.include_optimizer_state});
  }

  CallbackState state() const override {
    return {{best_ ? 1.0 : 0.0, best_.value_or(0.0), static_cast<double>(saved_epoch_)}, {}, {}};
  }
  void set_state(const CallbackState& s) override {
    if (s.numbers.size() != 3) throw UsageError("ModelCheckpoint: a saved state has 3 numbers, got " + std::to_string(s.numbers.size()));
    best_ = s.numbers[0] != 0 ? std::optional<double>(s.numbers[1]) : std::nullopt;
    saved_epoch_ = static_cast<int>(s.numbers[2]);
  }

 private:
  std::filesystem::path path_;
  ModelCheckpointOptions o_;
  Monitor monitor_;
  std::optional<double> best_;
  int saved_epoch_ = 0;
};

}  // namespace loom
