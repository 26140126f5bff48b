#pragma once
// What Adam, SGD and RMSprop share: optimizers whose update of each value
// depends on that value, its gradient and per-value slots alone. The frame
// does everything but the update rule itself, once:
//
// - the options every optimizer has (CommonOptions): learning_rate, or a
//   LearningRateSchedule asked for the rate of each step; weight_decay;
//   global_clipnorm;
// - weight decay, decoupled, as Keras's weight_decay option and PyTorch's
//   AdamW: before the update, w -= rate * weight_decay * w, for the
//   parameters that decay (Param::decays(): kernels, not biases nor
//   BatchNormalization's gamma and beta, unless Param::decay says otherwise);
// - clipping by global norm (gradient_clipping.hpp) before the update. A
//   clipping optimizer cannot step in parts (steps_in_parts() is false): the
//   norm is over every gradient, and a rank of data-parallel training holds
//   only its block. Data-parallel fit then sums whole gradients instead;
// - the step count, the slots (zeroed by build, groups of one vector per
//   parameter) and their saving, step_part, end_epoch to the schedule;
// - the loop over values: 16 at a time through the same vector instructions,
//   a partial group through a zero-padded copy, so each value gets the same
//   bits however the values are cut (threads, data-parallel parts): the
//   scalar tail of an ordinary loop computes differently on AVX-512 (Eigen's
//   vector sqrt there is an approximation refined by Newton, and a compiler
//   fuses a * b + c into one rounding in scalar code only).
//
// An update rule implements prepare(rate) (its constants for this step) and
// update(i, p, j0, n, g), usually as for_lanes(...) with a kernel on 16 values.
//
// Thread safety: step mutates the slots and the parameters: one thread at a time.

#include <algorithm>
#include <array>
#include <memory>
#include <string>
#include <vector>

#include "loom/optimizers/check_option.hpp"
#include "loom/optimizers/gradient_clipping.hpp"
#include "loom/optimizers/optimizer.hpp"
#include "loom/parallel.hpp"
#include "loom/schedules/learning_rate_schedule.hpp"

namespace loom {

/// The options every ElementwiseOptimizer takes (each optimizer's options struct carries them).
struct CommonOptions {
  float learning_rate = 1e-3f;
  float weight_decay = 0.0f;      // decoupled; 0: none
  float global_clipnorm = 0.0f;   // 0: no clipping
  std::shared_ptr<const LearningRateSchedule> schedule;  // copied; when set, it gives the rates
};

/// The common options out of an optimizer's own options struct.
template <typename Options>
CommonOptions common_options(const Options& o) {
  return {o.learning_rate, o.weight_decay, o.global_clipnorm, o.schedule};
}

class ElementwiseOptimizer : public Optimizer {
 public:
  float learning_rate() const { return c_.learning_rate; }
  float weight_decay() const { return c_.weight_decay; }
  float global_clipnorm() const { return c_.global_clipnorm; }
  const LearningRateSchedule* schedule() const { return schedule_.get(); }
  long long steps() const { return steps_; }
  /// The rate the next step will use.
  double current_learning_rate() const { return schedule_ ? schedule_->rate(steps_) : double{c_.learning_rate}; }

  void build(std::span<Param* const> params) override {
    sizes_.clear();
    for (const Param* p : params) sizes_.push_back(p->size());
    slots_.clear();
    for (std::size_t g = 0; g < groups_; ++g)
      for (Index n : sizes_) slots_.push_back(Eigen::VectorXf::Zero(n));
    steps_ = 0;
  }

  void step(std::span<Param* const> params) override {
    check_count(params);
    if (c_.global_clipnorm > 0) clip_by_global_norm(params, c_.global_clipnorm);
    begin_step();
    for (std::size_t i = 0; i < params.size(); ++i) update(i, *params[i], 0, params[i]->size(), params[i]->grad.data());
  }

  bool steps_in_parts() const override { return !(c_.global_clipnorm > 0); }

  // Values [first, first + grad.size()) of the parameters end to end: the
  // piece of each parameter that falls inside, from its slice of grad.
  void step_part(std::span<Param* const> params, Index first, std::span<const float> grad) override {
    if (!steps_in_parts()) Optimizer::step_part(params, first, grad);
    check_count(params);
    begin_step();
    for_pieces_end_to_end(
        params.size(), [&](std::size_t i) { return params[i]->size(); }, first, first + static_cast<Index>(grad.size()),
        [&](std::size_t i, Index offset, Index count, Index at) {
          update(i, *params[i], offset, count, grad.data() + (at - first));
        });
  }

  void end_epoch(double monitored) override {
    if (schedule_) schedule_->end_epoch(monitored);
  }

  State state() const override { return {steps_, slots_, schedule_ ? schedule_->state() : std::vector<double>{}}; }

  void set_state(State s) override {
    bool fits = s.steps >= 0 && s.slots.size() == slots_.size();
    for (std::size_t i = 0; fits && i < slots_.size(); ++i) fits = s.slots[i].size() == slots_[i].size();
    if (!fits)
      throw UsageError(std::string(kind()) + "::set_state: the state does not fit the " + std::to_string(sizes_.size()) +
                       " parameters this optimizer was built for");
    if (schedule_) schedule_->set_state(s.schedule);
    else if (!s.schedule.empty()) throw UsageError(std::string(kind()) + "::set_state: a schedule's state, but no schedule");
    steps_ = s.steps;
    slots_ = std::move(s.slots);
  }

 protected:
  ElementwiseOptimizer(std::string_view kind, CommonOptions c, std::size_t slot_groups)
      : c_(std::move(c)), groups_(slot_groups), schedule_(c_.schedule ? c_.schedule->clone() : nullptr) {
    c_.schedule.reset();  // the copy above is the one this optimizer advances
    detail::check_option(c_.learning_rate > 0 && std::isfinite(c_.learning_rate), kind, "learning_rate",
                         c_.learning_rate, "be positive");
    detail::check_option(c_.weight_decay >= 0 && std::isfinite(c_.weight_decay), kind, "weight_decay",
                         c_.weight_decay, "not be negative");
    detail::check_option(c_.global_clipnorm >= 0 && std::isfinite(c_.global_clipnorm), kind, "global_clipnorm",
                         c_.global_clipnorm, "not be negative (0: no clipping)");
  }
  ElementwiseOptimizer(const ElementwiseOptimizer& o)
      : Optimizer(o), c_(o.c_), groups_(o.groups_), schedule_(o.schedule_ ? o.schedule_->clone() : nullptr),
        sizes_(o.sizes_), slots_(o.slots_), steps_(o.steps_) {}
  ElementwiseOptimizer& operator=(const ElementwiseOptimizer&) = delete;

  /// The update's constants for a step at this rate (the step count has advanced: steps() is 1 at the first).
  virtual void prepare(double rate) = 0;
  /// Values [j0, j0 + n) of parameter i from their gradients g.
  virtual void update(std::size_t i, Param& p, Index j0, Index n, const float* g) = 0;

  /// Slot vector of group `group` for parameter i.
  Eigen::VectorXf& slot(std::size_t group, std::size_t i) { return slots_[group * sizes_.size() + i]; }
  std::span<const Eigen::VectorXf> slot_group(std::size_t group) const {
    return std::span<const Eigen::VectorXf>(slots_).subspan(group * sizes_.size(), sizes_.size());
  }

  static constexpr Index kLanes = 16;  // one AVX-512 vector, two AVX2 ones
  using Lanes = Eigen::Array<float, kLanes, 1>;
  using LanesMap = Eigen::Map<Lanes>;
  using ConstLanesMap = Eigen::Map<const Lanes>;

  /// A slot a kernel does not use this time: its pointer is null.
  static constexpr std::size_t kNoSlot = static_cast<std::size_t>(-1);

  /// kernel(w, slots, g) on every 16 values of [j0, j0 + n) of parameter i,
  /// with `groups` the slot groups it reads and writes (or kNoSlot), after weight decay.
  template <std::size_t S, typename Kernel>
  void for_lanes(std::size_t i, Param& p, Index j0, Index n, const float* g, std::array<std::size_t, S> groups,
                 Kernel&& kernel) {
    float* w = p.value.data() + j0;
    std::array<float*, S> s;
    for (std::size_t q = 0; q < S; ++q) s[q] = groups[q] == kNoSlot ? nullptr : slot(groups[q], i).data() + j0;
    const float decay = p.decays() ? decay_ : 0.0f;
    // `groups` whole groups of 16 from wk, sk, gk. One out-of-line body for
    // the whole groups and the padded last one: inlined at two call sites,
    // g++ had contracted a * b - c into FMAs at one and not the other, and
    // SGD's Nesterov steps in parts differed in the last bit.
    auto run = [&](float* wk, const std::array<float*, S>& sk, const float* gk, Index groups) __attribute__((noinline)) {
      for (Index q = 0; q < groups * kLanes; q += kLanes) {
        std::array<float*, S> sq;
        for (std::size_t i = 0; i < S; ++i) sq[i] = sk[i] ? sk[i] + q : nullptr;
        LanesMap wl(wk + q);
        if (decay != 0.0f) wl -= decay * wl;
        kernel(wl, sq, ConstLanesMap(gk + q));
      }
    };
    for_blocks(n, [&](Index j, Index len) {
      const Index whole = len / kLanes, count = len - whole * kLanes;
      std::array<float*, S> sk;
      for (std::size_t q = 0; q < S; ++q) sk[q] = s[q] ? s[q] + j : nullptr;
      run(w + j, sk, g + j, whole);
      if (count == 0) return;
      const Index k = j + whole * kLanes;
      std::array<float, kLanes> pw{}, pg{};
      std::array<std::array<float, kLanes>, S> ps{};
      std::array<float*, S> pk;
      std::copy_n(w + k, count, pw.data());
      std::copy_n(g + k, count, pg.data());
      for (std::size_t q = 0; q < S; ++q) {
        if (s[q]) std::copy_n(s[q] + k, count, ps[q].data());
        pk[q] = s[q] ? ps[q].data() : nullptr;
      }
      run(pw.data(), pk, pg.data(), 1);
      std::copy_n(pw.data(), count, w + k);
      for (std::size_t q = 0; q < S; ++q)
        if (s[q]) std::copy_n(ps[q].data(), count, s[q] + k);
    });
  }

 private:
  void check_count(std::span<Param* const> params) const {
    if (params.size() != sizes_.size())
      throw UsageError(std::string(kind()) + ": step over " + std::to_string(params.size()) + " parameters, built for " +
                       std::to_string(sizes_.size()));
  }
  // The rate of this step, from the schedule at the steps taken so far; then one step more.
  void begin_step() {
    const double rate = current_learning_rate();
    ++steps_;
    decay_ = static_cast<float>(rate * double{c_.weight_decay});
    prepare(rate);
  }

  CommonOptions c_;  // its schedule moved to schedule_
  std::size_t groups_;
  std::unique_ptr<LearningRateSchedule> schedule_;
  std::vector<Index> sizes_;             // of each parameter, from build
  std::vector<Eigen::VectorXf> slots_;   // group by group, each one vector per parameter
  long long steps_ = 0;
  float decay_ = 0.0f;                   // rate * weight_decay of this step
};

}  // namespace loom
