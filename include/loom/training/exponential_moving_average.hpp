#pragma once
// ExponentialMovingAverage: a callback that keeps an exponential moving
// average of the model's weights over the optimizer's steps and puts it in
// the model when training ends, a smoother end point than the last step's
// weights (Keras's optimizer option use_ema; PyTorch's
// swa_utils.AveragedModel with an exponential average).
//
//   ExponentialMovingAverage ema({.decay = 0.999});
//   model.fit(train, {.epochs = 30, .callbacks = {&ema}});  // the model now holds the average
//
// After every step: average = decay * average + (1 - decay) * weights, for
// every parameter, BatchNormalization's moving statistics included (they go
// with the weights they were measured with). The average starts from the
// weights the run starts with. Epoch records, validation, other callbacks
// and checkpoints see the trained weights; only the end of training swaps
// the average in. The average and its step count are in fit's checkpoints,
// so a killed and resumed run ends with the same average as an
// uninterrupted one.
//
// Thread safety: callbacks run on fit's thread, one at a time.

#include <cmath>
#include <string>
#include <vector>

#include "loom/error.hpp"
#include "loom/sequential.hpp"
#include "loom/training/callback.hpp"
#include "loom/training/weight_copies.hpp"

namespace loom {

struct ExponentialMovingAverageOptions {
  float decay = 0.999f;  // in (0, 1): the share of the average each step keeps
};

class ExponentialMovingAverage final : public Callback {
 public:
  explicit ExponentialMovingAverage(ExponentialMovingAverageOptions o = {}) : o_(o) {
    if (!(o.decay > 0.0f && o.decay < 1.0f))
      throw UsageError("ExponentialMovingAverage: decay must be in (0, 1), got " + detail::option_value_text(o.decay));
  }

  const ExponentialMovingAverageOptions& options() const { return o_; }
  /// Steps averaged so far.
  long long steps() const { return steps_; }
  /// The average so far (every weight of the model, in model-file order).
  const std::vector<Eigen::VectorXf>& average() const { return average_; }

  void on_train_begin(TrainingContext& c) override {
    if (c.history().empty() || average_.empty()) {  // a new run, not a resumed one
      average_ = detail::weight_values(c.model());
      steps_ = 0;
    } else if (!detail::fits_weights(c.model(), average_)) {
      throw UsageError("ExponentialMovingAverage: the checkpoint's average belongs to another model");
    }
  }

  void on_batch_end(const BatchLogs&, TrainingContext& c) override {
    const std::span<Param* const> w = c.model().weights();
    const float keep = o_.decay, take = 1.0f - o_.decay;
    for (std::size_t i = 0; i < w.size(); ++i) average_[i] = keep * average_[i] + take * w[i]->value;
    ++steps_;
  }

  void on_train_end(TrainingContext& c) override {
    if (steps_ > 0) detail::put_weight_values(c.model(), average_, "ExponentialMovingAverage");
  }

  CallbackState state() const override { return {{static_cast<double>(steps_)}, average_, {}}; }
  void set_state(const CallbackState& s) override {
    if (s.numbers.size() != 1)
      throw UsageError("ExponentialMovingAverage: a saved state has 1 number, got " + std::to_string(s.numbers.size()));
    steps_ = static_cast<long long>(s.numbers[0]);
    average_ = s.arrays;
  }

 private:
  ExponentialMovingAverageOptions o_;
  long long steps_ = 0;
  std::vector<Eigen::VectorXf> average_;
};

}  // namespace loom
