#pragma once
// RMSprop, Keras's form and defaults (learning_rate 1e-3, rho 0.9,
// momentum 0, epsilon 1e-7, centered false), epsilon inside the root:
//   v = rho v + (1 - rho) g^2
//   centered:  a = rho a + (1 - rho) g,   d = v - a^2 + eps
//   otherwise:                           d = v + eps
//   step = lr g / sqrt(d)
//   momentum 0:  w -= step;   otherwise  u = momentum u + step,  w -= u
// Slots: v for every parameter, then u (momentum > 0), then a (centered).
// lr is the learning rate or the schedule's rate of the step. Weight decay,
// schedules and clipping: elementwise_optimizer.hpp.
//
// Thread safety: step mutates the slots and the parameters: one thread at a time.

#include <cmath>
#include <string>

#include "loom/optimizers/elementwise_optimizer.hpp"

namespace loom {

struct RMSpropOptions {
  float learning_rate = 1e-3f;
  float rho = 0.9f;
  float momentum = 0.0f;
  float epsilon = 1e-7f;
  bool centered = false;
  float weight_decay = 0.0f;     // decoupled, as Keras's
  float global_clipnorm = 0.0f;  // 0: no clipping
  std::shared_ptr<const LearningRateSchedule> schedule;
};

class RMSprop final : public ElementwiseOptimizer {
 public:
  explicit RMSprop(RMSpropOptions o = {})
      : ElementwiseOptimizer("RMSprop", common_options(o),
                             1 + (o.momentum > 0 ? 1 : 0) + (o.centered ? 1 : 0)),
        o_(std::move(o)) {
    o_.schedule.reset();  // schedule() is the optimizer's own copy
    detail::check_option(o_.rho >= 0 && o_.rho < 1, "RMSprop", "rho", o_.rho, "be in [0, 1)");
    detail::check_option(o_.momentum >= 0 && o_.momentum < 1, "RMSprop", "momentum", o_.momentum, "be in [0, 1)");
    detail::check_option(o_.epsilon > 0 && std::isfinite(o_.epsilon), "RMSprop", "epsilon", o_.epsilon, "be positive");
  }

  std::string_view kind() const override { return "RMSprop"; }
  const RMSpropOptions& options() const { return o_; }
  std::unique_ptr<Optimizer> clone() const override { return std::make_unique<RMSprop>(*this); }

 private:
  void prepare(double rate) override { lr_ = static_cast<float>(rate); }

  // Slot groups: 0 the mean square v; then the momentum u, then the mean gradient a, when used.
  void update(std::size_t i, Param& p, Index j0, Index n, const float* g) override {
    const bool momentum = o_.momentum > 0;
    const std::size_t u_at = 1, a_at = momentum ? 2 : 1;
    for_lanes<3>(i, p, j0, n, g, {0, momentum ? u_at : kNoSlot, o_.centered ? a_at : kNoSlot},
                 [&](LanesMap& w, const std::array<float*, 3>& s, const ConstLanesMap& gl) {
                   LanesMap v(s[0]);
                   v = o_.rho * v + (1.0f - o_.rho) * gl.square();
                   Lanes d = v + o_.epsilon;
                   if (o_.centered) {
                     LanesMap a(s[2]);
                     a = o_.rho * a + (1.0f - o_.rho) * gl;
                     d = v - a.square() + o_.epsilon;
                   }
                   const Lanes step = lr_ * gl / d.sqrt();
                   if (!momentum) {
                     w -= step;
                     return;
                   }
                   LanesMap u(s[1]);
                   u = o_.momentum * u + step;
                   w -= u;
                 });
  }

  RMSpropOptions o_;
  float lr_ = 0.0f;
};

}  // namespace loom
