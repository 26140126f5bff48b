#pragma once
// SGD with momentum and Nesterov momentum, Keras's form and defaults
// (learning_rate 0.01, momentum 0, nesterov false; nesterov needs momentum > 0):
//   momentum 0:  w -= lr g
//   otherwise:   u  = momentum u - lr g            (u: the velocity, a slot)
//                w += u                            (nesterov: w += momentum u - lr g)
// lr is the learning rate or the schedule's rate of the step. Weight decay,
// schedules and clipping: elementwise_optimizer.hpp.
//
// Thread safety: step mutates the velocity and the parameters: one thread at a time.

#include <string>

#include "loom/optimizers/elementwise_optimizer.hpp"

namespace loom {

struct SGDOptions {
  float learning_rate = 0.01f;
  float momentum = 0.0f;
  bool nesterov = false;
  float weight_decay = 0.0f;     // decoupled, as Keras's
  float global_clipnorm = 0.0f;  // 0: no clipping
  std::shared_ptr<const LearningRateSchedule> schedule;
};

class SGD final : public ElementwiseOptimizer {
 public:
  explicit SGD(SGDOptions o = {})
      : ElementwiseOptimizer("SGD", common_options(o),
                             o.momentum > 0 ? 1 : 0),  // no velocity without momentum, as Keras
        o_(std::move(o)) {
    o_.schedule.reset();  // schedule() is the optimizer's own copy
    detail::check_option(o_.momentum >= 0 && o_.momentum < 1, "SGD", "momentum", o_.momentum, "be in [0, 1)");
    if (o_.nesterov && !(o_.momentum > 0))  // as PyTorch: Nesterov's look-ahead is along the velocity
      throw UsageError("SGD: nesterov needs momentum > 0, got momentum " + detail::option_value_text(o_.momentum));
  }

  std::string_view kind() const override { return "SGD"; }
  const SGDOptions& options() const { return o_; }
  std::unique_ptr<Optimizer> clone() const override { return std::make_unique<SGD>(*this); }
  /// The velocities, one per parameter (none when momentum is 0).
  std::span<const Eigen::VectorXf> velocities() const {
    return o_.momentum > 0 ? slot_group(0) : std::span<const Eigen::VectorXf>{};
  }

 private:
  void prepare(double rate) override { lr_ = static_cast<float>(rate); }

  void update(std::size_t i, Param& p, Index j0, Index n, const float* g) override {
    if (!(o_.momentum > 0)) {
      for_lanes<0>(i, p, j0, n, g, {}, [&](LanesMap& w, const std::array<float*, 0>&, const ConstLanesMap& gl) {
        w -= lr_ * gl;
      });
      return;
    }
    for_lanes<1>(i, p, j0, n, g, {0}, [&](LanesMap& w, const std::array<float*, 1>& s, const ConstLanesMap& gl) {
      LanesMap u(s[0]);
      u = o_.momentum * u - lr_ * gl;
      if (o_.nesterov) w += o_.momentum * u - lr_ * gl;
      else w += u;
    });
  }

  SGDOptions o_;
  float lr_ = 0.0f;
};

}  // namespace loom
