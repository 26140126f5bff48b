#pragma once
// Adam (Kingma & Ba), with the Keras defaults and Keras's form of the update,
// where epsilon is added to sqrt(v) after bias correction has been folded into
// the step size:
//   t  += 1                                (once per step, for all parameters)
//   m   = b1 m + (1 - b1) g
//   v   = b2 v + (1 - b2) g^2
//   lr_t = lr sqrt(1 - b2^t) / (1 - b1^t)
//   w  -= lr_t m / (sqrt(v) + eps)
// lr is the learning rate or the schedule's rate of the step. With a
// weight_decay, w -= lr * weight_decay * w first (decoupled: AdamW, adamw.hpp).
// The options every optimizer shares (schedule, weight decay, clipping) are
// explained in elementwise_optimizer.hpp.
//
// Thread safety: step mutates the moments and the parameters: one thread at a time.

#include <cmath>
#include <span>
#include <string>

#include "loom/optimizers/elementwise_optimizer.hpp"

namespace loom {

struct AdamOptions {
  float learning_rate = 1e-3f;
  float beta1 = 0.9f;
  float beta2 = 0.999f;
  float epsilon = 1e-7f;
  float weight_decay = 0.0f;     // decoupled (AdamW's); 0: Adam
  float global_clipnorm = 0.0f;  // 0: no clipping
  std::shared_ptr<const LearningRateSchedule> schedule;
};

class Adam : public ElementwiseOptimizer {
 public:
  explicit Adam(AdamOptions o = {}) : Adam(std::move(o), "Adam") {}

  std::string_view kind() const override { return "Adam"; }
  const AdamOptions& options() const { return o_; }

  std::unique_ptr<Optimizer> clone() const override { return std::make_unique<Adam>(*this); }

  // State, for checkpoints: first and second moments per parameter, step count.
  std::span<const Eigen::VectorXf> first_moments() const { return slot_group(0); }
  std::span<const Eigen::VectorXf> second_moments() const { return slot_group(1); }

 protected:
  Adam(AdamOptions o, std::string_view kind)
      : ElementwiseOptimizer(kind, common_options(o), 2),
        o_(std::move(o)) {
    o_.schedule.reset();  // schedule() is the optimizer's own copy
    detail::check_option(o_.beta1 >= 0 && o_.beta1 < 1, kind, "beta1", o_.beta1, "be in [0, 1)");
    detail::check_option(o_.beta2 >= 0 && o_.beta2 < 1, kind, "beta2", o_.beta2, "be in [0, 1)");
    detail::check_option(o_.epsilon > 0 && std::isfinite(o_.epsilon), kind, "epsilon", o_.epsilon, "be positive");
  }

 private:
  // The step size of this step, bias correction folded in.
  void prepare(double rate) override {
    const double t = static_cast<double>(steps());
    lr_t_ = static_cast<float>(rate * std::sqrt(1.0 - std::pow(double{o_.beta2}, t)) /
                               (1.0 - std::pow(double{o_.beta1}, t)));
  }

  void update(std::size_t i, Param& p, Index j0, Index n, const float* g) override {
    for_lanes<2>(i, p, j0, n, g, {0, 1}, [&](LanesMap& w, const std::array<float*, 2>& s, const ConstLanesMap& gl) {
      LanesMap m(s[0]), v(s[1]);
      m = o_.beta1 * m + (1.0f - o_.beta1) * gl;
      v = o_.beta2 * v + (1.0f - o_.beta2) * gl.square();
      w -= lr_t_ * m / (v.sqrt() + o_.epsilon);
    });
  }

  AdamOptions o_;
  float lr_t_ = 0.0f;
};

}  // namespace loom
