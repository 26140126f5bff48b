#pragma once
// Adam (Kingma & Ba), with the Keras defaults and Keras's form of the update,
// where epsilon is added to sqrt(v) after bias correction has been folded into
// the step size:
//   t  += 1                                (once per step, for all parameters)
//   m   = b1 m + (1 - b1) g
//   v   = b2 v + (1 - b2) g^2
//   lr_t = lr sqrt(1 - b2^t) / (1 - b1^t)
//   w  -= lr_t m / (sqrt(v) + eps)
//
// Thread safety: step mutates the moments and the parameters: one thread at a time.

#include <algorithm>
#include <array>
#include <cmath>
#include <string>
#include <vector>

#include "loom/optimizers/optimizer.hpp"
#include "loom/parallel.hpp"

namespace loom {

struct AdamOptions {
  float learning_rate = 1e-3f;
  float beta1 = 0.9f;
  float beta2 = 0.999f;
  float epsilon = 1e-7f;
};

class Adam final : public Optimizer {
 public:
  explicit Adam(AdamOptions o = {}) : o_(o) {
    if (!(o.learning_rate > 0)) throw UsageError("Adam: learning_rate must be positive, got " + std::to_string(o.learning_rate));
    if (!(o.beta1 >= 0 && o.beta1 < 1)) throw UsageError("Adam: beta1 must be in [0, 1), got " + std::to_string(o.beta1));
    if (!(o.beta2 >= 0 && o.beta2 < 1)) throw UsageError("Adam: beta2 must be in [0, 1), got " + std::to_string(o.beta2));
    if (!(o.epsilon > 0)) throw UsageError("Adam: epsilon must be positive, got " + std::to_string(o.epsilon));
  }

  std::string_view kind() const override { return "Adam"; }
  const AdamOptions& options() const { return o_; }
  long long steps() const { return t_; }

  void build(std::span<Param* const> params) override {
    m_.clear();
    v_.clear();
    for (const Param* p : params) {
      m_.push_back(Eigen::VectorXf::Zero(p->size()));
      v_.push_back(Eigen::VectorXf::Zero(p->size()));
    }
    t_ = 0;
  }

  void step(std::span<Param* const> params) override {
    const float lr_t = advance(params);
    for (std::size_t i = 0; i < params.size(); ++i)
      update(i, *params[i], 0, params[i]->size(), params[i]->grad.data(), lr_t);
  }

  bool steps_in_parts() const override { return true; }

  // Values [first, first + grad.size()) of the parameters end to end: the
  // piece of each parameter that falls inside, from its slice of grad.
  void step_part(std::span<Param* const> params, Index first, std::span<const float> grad) override {
    const float lr_t = advance(params);
    for_pieces_end_to_end(
        params.size(), [&](std::size_t i) { return params[i]->size(); }, first, first + static_cast<Index>(grad.size()),
        [&](std::size_t i, Index offset, Index count, Index at) {
          update(i, *params[i], offset, count, grad.data() + (at - first), lr_t);
        });
  }

  std::unique_ptr<Optimizer> clone() const override { return std::make_unique<Adam>(*this); }

  // State, for checkpoints: first and second moments per parameter, step count.
  const std::vector<Eigen::VectorXf>& first_moments() const { return m_; }
  const std::vector<Eigen::VectorXf>& second_moments() const { return v_; }

  State state() const override {
    State s{t_, m_};
    s.slots.insert(s.slots.end(), v_.begin(), v_.end());
    return s;
  }

  void set_state(State s) override {
    const std::size_t n = m_.size();
    bool fits = s.steps >= 0 && s.slots.size() == 2 * n;
    for (std::size_t i = 0; fits && i < n; ++i)
      fits = s.slots[i].size() == m_[i].size() && s.slots[n + i].size() == v_[i].size();
    if (!fits)
      throw UsageError("Adam::set_state: the state does not fit the " + std::to_string(n) +
                       " parameters this optimizer was built for");
    t_ = s.steps;
    for (std::size_t i = 0; i < n; ++i) {
      m_[i] = std::move(s.slots[i]);
      v_[i] = std::move(s.slots[n + i]);
    }
  }

 private:
  // One step more; the step size of this step (bias correction folded in).
  float advance(std::span<Param* const> params) {
    if (params.size() != m_.size())
      throw UsageError("Adam: step over " + std::to_string(params.size()) + " parameters, built for " +
                       std::to_string(m_.size()));
    ++t_;
    const double t = static_cast<double>(t_);
    return static_cast<float>(o_.learning_rate * std::sqrt(1.0 - std::pow(double{o_.beta2}, t)) /
                              (1.0 - std::pow(double{o_.beta1}, t)));
  }

  // Values [j0, j0 + n) of parameter i, from their gradients g, 16 at a
  // time. Each value must get the same bits however the values are cut
  // (for_blocks, data-parallel parts), so every value goes through the same
  // vector instructions, a partial group through a zero-padded copy: the
  // scalar tail of an ordinary loop computes differently on AVX-512 (Eigen's
  // vector sqrt there is an approximation refined by Newton, and a compiler
  // fuses a * b + c into one rounding in scalar code only), and data-parallel
  // steps in parts had differed from whole steps in the last bit.
  void update(std::size_t i, Param& p, Index j0, Index n, const float* g, float lr_t) {
    float* w = p.value.data() + j0;
    float* m = m_[i].data() + j0;
    float* v = v_[i].data() + j0;
    for_blocks(n, [&](Index j, Index len) {
      for (Index k = j; k < j + len; k += kLanes) {
        const Index count = std::min(kLanes, j + len - k);
        if (count == kLanes) {
          update_lanes(w + k, m + k, v + k, g + k, lr_t);
          continue;
        }
        std::array<float, kLanes> pw{}, pm{}, pv{}, pg{};
        std::copy_n(w + k, count, pw.data());
        std::copy_n(m + k, count, pm.data());
        std::copy_n(v + k, count, pv.data());
        std::copy_n(g + k, count, pg.data());
        update_lanes(pw.data(), pm.data(), pv.data(), pg.data(), lr_t);
        std::copy_n(pw.data(), count, w + k);
        std::copy_n(pm.data(), count, m + k);
        std::copy_n(pv.data(), count, v + k);
      }
    });
  }

  static constexpr Index kLanes = 16;  // one AVX-512 vector, two AVX2 ones
  using Lanes = Eigen::Array<float, kLanes, 1>;

  void update_lanes(float* w, float* m, float* v, const float* g, float lr_t) const {
    Eigen::Map<Lanes> wl(w), ml(m), vl(v);
    const Eigen::Map<const Lanes> gl(g);
    ml = o_.beta1 * ml + (1.0f - o_.beta1) * gl;
    vl = o_.beta2 * vl + (1.0f - o_.beta2) * gl.square();
    wl -= lr_t * ml / (vl.sqrt() + o_.epsilon);
  }

  AdamOptions o_;
  long long t_ = 0;
  std::vector<Eigen::VectorXf> m_, v_;
};

}  // namespace loom
