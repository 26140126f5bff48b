#pragma once
// Callbacks: code of the user's (or loom's EarlyStopping, ModelCheckpoint,
// CSVLogger) that fit calls at fixed points of training, as Keras's callbacks.
//
//   EarlyStopping stop({.monitor = "val_loss", .patience = 3, .restore_best_weights = true});
//   CSVLogger log("training.csv");
//   model.fit(train, {.epochs = 50, .validation_split = 0.1, .callbacks = {&stop, &log}});
//
// Order of calls: on_train_begin, then per epoch on_epoch_begin, on_batch_end
// after every optimizer step, on_epoch_end with the epoch's record (after
// validation, before the checkpoint is written), and on_train_end. A callback
// stops training with context.stop_training(reason): the epoch in progress
// ends normally (its record, callbacks and checkpoint), and no other starts.
//
// A callback with state that matters to the rest of the run (the best value
// seen, a patience count) returns it from state() and takes it back in
// set_state(): fit keeps it in its checkpoints, so a killed and resumed run
// makes the same decisions as an uninterrupted one.
//
// Thread safety: callbacks run on fit's thread, one at a time.

#include <string>
#include <vector>

#include <Eigen/Core>

#include "loom/tensor.hpp"
#include "loom/training/history.hpp"

namespace loom {

class Sequential;

/// What a callback sees of the run and may change in it.
class TrainingContext {
 public:
  TrainingContext(Sequential& model, const History& history, int epochs, Index steps_per_epoch, bool validates)
      : model_(model), history_(history), epochs_(epochs), steps_(steps_per_epoch), validates_(validates) {}

  Sequential& model() { return model_; }
  const History& history() const { return history_; }  // the epochs done so far (resumed ones included)
  int epochs() const { return epochs_; }                 // FitOptions::epochs
  Index steps_per_epoch() const { return steps_; }       // batches in an epoch
  bool validates() const { return validates_; }          // whether records have val_loss and val_accuracy
  bool leader() const { return leader_; }  // false on the other ranks of data-parallel training: they write no files

  /// Ends training after the epoch in progress (Keras's model.stop_training = True).
  void stop_training(std::string reason) {
    if (!stopping_) reason_ = std::move(reason);
    stopping_ = true;
  }
  bool stopping() const { return stopping_; }
  const std::string& stop_reason() const { return reason_; }

 private:
  friend class FitLoop;
  Sequential& model_;
  const History& history_;
  int epochs_;
  Index steps_;
  bool validates_;
  bool leader_ = true;
  bool stopping_ = false;
  std::string reason_;
};

/// Running means of the epoch so far, after a batch.
struct BatchLogs {
  Index batch = 0;  // 1-based within the epoch
  double loss = 0.0;
  double accuracy = 0.0;
};

/// A callback's state in a checkpoint: numbers, arrays and text, as it likes.
struct CallbackState {
  std::vector<double> numbers;
  std::vector<Eigen::VectorXf> arrays;
  std::string text;
  bool operator==(const CallbackState&) const = default;
};

class Callback {
 public:
  virtual ~Callback() = default;
  virtual void on_train_begin(TrainingContext&) {}
  virtual void on_epoch_begin(int /*epoch*/, TrainingContext&) {}
  virtual void on_batch_end(const BatchLogs&, TrainingContext&) {}
  virtual void on_epoch_end(const EpochRecord&, TrainingContext&) {}
  virtual void on_train_end(TrainingContext&) {}

  /// The state a resumed run needs (see above); none by default.
  virtual CallbackState state() const { return {}; }
  /// Takes back what state() returned (from a checkpoint); a state of the
  /// wrong layout is a UsageError.
  virtual void set_state(const CallbackState&) {}
};

}  // namespace loom
