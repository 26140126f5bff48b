#pragma once
// A finite-difference gradient checker for any built loom::Layer, after dlib's
// test_layer. Given a layer and an input x it:
//
//   1. checks that infer(x) gives exactly (bitwise) the output of forward(x);
//   2. draws a random upstream gradient G (seeded, uniform in [-1, 1]) of the
//      output's dimensions and takes f(x, w) = sum(forward(x) .* G), summed in
//      double, so that df/dx = backward(G) and df/dw = the parameter grads;
//   3. runs forward + backward(G) twice, each time after filling every
//      parameter gradient with a NaN sentinel: a grad left unassigned, or
//      accumulated with +=, keeps the NaN; a dx buffer that accumulates across
//      calls instead of being assigned makes the two rounds differ;
//   4. compares dx and every parameter gradient, entry by entry, with central
//      differences (f(v + eps) - f(v - eps)) / (2 eps), taking the step that
//      float arithmetic actually made.
//
// Entry i passes when |analytic - numeric| <= rtol * max(|analytic|, |numeric|)
// + atol * scale, where scale is the largest |numeric| entry of that tensor (at
// least 1e-3), so the test is independent of how large the gradients of a
// layer are. With the defaults (eps 1e-2, rtol 2e-3, atol 2e-4) every correct
// float32 layer in test_gradients.cpp stays below 0.05 of the tolerance (the
// whole-model check there, with the loss's curvature, below 0.2), while a wrong
// formula (a transpose missing in conv or dense backward, col2im's channel
// order reversed, a ReLU or softmax derivative term missing, a bias gradient
// averaged instead of summed, max-pool routing to the wrong element) reaches
// 300 to 800 times it, and even a gradient 3% too large fails (13x). Each of
// those was tried on a deliberately broken copy of a layer; test_gradients.cpp
// keeps a few of them as tests of this checker.
//
// Finite differences are only valid where f is smooth: keep inputs off ReLU
// kinks (|pre-activation| > eps times the largest |weight| or |input|) and keep
// the values inside a max-pool window at least 2 eps apart. The helpers below
// (random_tensor, away_from_zero, distinct_tensor) make such inputs.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <numeric>
#include <span>
#include <sstream>
#include <string>
#include <vector>

#include "loom/layer.hpp"
#include "loom/random.hpp"
#include "loom/tensor.hpp"

namespace loom::testing {

struct GradientCheckOptions {
  double eps = 1e-2;          // finite-difference half step
  double rtol = 2e-3;         // relative tolerance per entry
  double atol = 2e-4;         // absolute tolerance, as a fraction of the tensor's largest |numeric| entry
  std::uint64_t seed = 2024;  // seeds the upstream gradient G
};

/// The outcome for one gradient tensor (dx, or one parameter).
struct TensorCheck {
  std::string name;          // "dx", "kernel", "bias"
  Index size = 0;
  double worst_ratio = 0.0;  // max over entries of error / tolerance; <= 1 passes
  Index worst_index = -1;
  double worst_analytic = 0.0, worst_numeric = 0.0;
  double scale = 0.0;        // largest |numeric| entry
};

struct GradientReport {
  std::vector<std::string> problems;  // sentinel left, not repeatable, infer != forward, shapes
  std::vector<TensorCheck> tensors;   // dx first, then each parameter in params() order

  double worst_ratio() const {
    double w = 0.0;
    for (const TensorCheck& t : tensors) w = std::max(w, t.worst_ratio);
    return w;
  }
  bool ok() const { return problems.empty() && !tensors.empty() && worst_ratio() <= 1.0; }

  std::string describe() const {
    std::ostringstream s;
    s.precision(6);
    for (const std::string& p : problems) s << "problem: " << p << '\n';
    for (const TensorCheck& t : tensors)
      s << t.name << " (" << t.size << " entries, largest |numeric| " << t.scale << "): worst error/tolerance "
        << t.worst_ratio << " at [" << t.worst_index << "] analytic " << t.worst_analytic << " numeric "
        << t.worst_numeric << '\n';
    return s.str();
  }
};

// ---- inputs -------------------------------------------------------------

/// A tensor (n, h, w, c) of values uniform in [lo, hi).
inline Tensor random_tensor(Index n, Index h, Index w, Index c, Random& rng, float lo = -1.0f, float hi = 1.0f) {
  Tensor t(n, h, w, c);
  for (Index i = 0; i < t.size(); ++i) t.data()[i] = rng.uniform(lo, hi);
  return t;
}

/// Uniform magnitudes in [min_abs, 1) with random signs: no value near ReLU's kink at 0.
inline Tensor away_from_zero(Index n, Index h, Index w, Index c, Random& rng, float min_abs = 0.1f) {
  Tensor t(n, h, w, c);
  for (Index i = 0; i < t.size(); ++i) {
    const float m = rng.uniform(min_abs, 1.0f);
    t.data()[i] = rng.below(2) ? m : -m;
  }
  return t;
}

/// Every value distinct, any two at least `spacing` apart (a shuffled,
/// centred arange): max-pool windows without ties or near-ties.
inline Tensor distinct_tensor(Index n, Index h, Index w, Index c, Random& rng, float spacing = 0.05f) {
  Tensor t(n, h, w, c);
  std::vector<Index> order(static_cast<std::size_t>(t.size()));
  std::iota(order.begin(), order.end(), Index{0});
  rng.shuffle(std::span<Index>(order));
  const float mid = static_cast<float>(t.size() - 1) / 2.0f;
  for (Index i = 0; i < t.size(); ++i)
    t.data()[i] = (static_cast<float>(order[static_cast<std::size_t>(i)]) - mid) * spacing;
  return t;
}

/// True when a and b have the same dimensions and bitwise-equal contents.
inline bool bitwise_equal(const Tensor& a, const Tensor& b) {
  return a.dimensions() == b.dimensions() &&
         std::memcmp(a.data(), b.data(), static_cast<std::size_t>(a.size()) * sizeof(float)) == 0;
}

// ---- the checker ----------------------------------------------------------

namespace detail {

inline double dot(const Tensor& y, const Tensor& g) {
  double s = 0.0;
  for (Index i = 0; i < y.size(); ++i) s += static_cast<double>(y.data()[i]) * static_cast<double>(g.data()[i]);
  return s;
}

// Compares analytic gradient entries with the numeric ones.
inline TensorCheck compare(std::string name, const float* analytic, const std::vector<double>& numeric,
                           const GradientCheckOptions& o) {
  TensorCheck t;
  t.name = std::move(name);
  t.size = static_cast<Index>(numeric.size());
  for (double v : numeric) t.scale = std::max(t.scale, std::abs(v));
  const double floor = o.atol * std::max(t.scale, 1e-3);
  for (std::size_t i = 0; i < numeric.size(); ++i) {
    const double a = analytic[i], n = numeric[i];
    const double err = std::abs(a - n);
    const double tol = o.rtol * std::max(std::abs(a), std::abs(n)) + floor;
    const double ratio = std::isfinite(a) ? err / tol : std::numeric_limits<double>::infinity();
    if (ratio > t.worst_ratio || t.worst_index < 0) {
      t.worst_ratio = ratio;
      t.worst_index = static_cast<Index>(i);
      t.worst_analytic = a;
      t.worst_numeric = n;
    }
  }
  return t;
}

// Central difference of f with respect to the float at v: restores v exactly.
template <typename F>
double central_difference(float& v, double eps, F&& f) {
  const float original = v;
  const float hi = static_cast<float>(original + eps), lo = static_cast<float>(original - eps);
  v = hi;
  const double f_hi = f();
  v = lo;
  const double f_lo = f();
  v = original;
  return (f_hi - f_lo) / (static_cast<double>(hi) - static_cast<double>(lo));
}

}  // namespace detail

/// Checks a built layer's backward against finite differences at input x (see the top of this file).
inline GradientReport check_gradients(Layer& layer, const Tensor& x, const GradientCheckOptions& o = {}) {
  GradientReport r;
  const float sentinel = std::numeric_limits<float>::quiet_NaN();

  // 1. inference gives exactly what training's forward gives
  const Tensor y = layer.forward(x);
  Tensor y_infer;
  layer.infer(x, y_infer);
  if (!bitwise_equal(y, y_infer))
    r.problems.push_back("infer(x) differs from forward(x): dimensions " + dims_string(y_infer) + " vs " +
                         dims_string(y) + " or values");

  // 2. the upstream gradient
  Random rng(o.seed);
  Tensor g(y.dimensions());
  for (Index i = 0; i < g.size(); ++i) g.data()[i] = rng.uniform(-1.0f, 1.0f);

  // 3. two rounds of forward + backward, grads pre-filled with the sentinel
  Tensor dx[2];
  std::vector<Eigen::VectorXf> grads[2];
  for (int round = 0; round < 2; ++round) {
    layer.forward(x);
    for (Param& p : layer.params()) p.grad.setConstant(sentinel);
    dx[round] = layer.backward(g);
    for (const Param& p : layer.params()) grads[round].push_back(p.grad);
  }
  if (dx[1].dimensions() != x.dimensions())
    r.problems.push_back("backward returned dx of dimensions " + dims_string(dx[1]) + " for an input of " +
                         dims_string(x));
  if (!bitwise_equal(dx[0], dx[1]))
    r.problems.push_back("backward is not repeatable: a second forward+backward on the same batch gave a "
                         "different dx (a buffer accumulates instead of being assigned?)");
  {
    std::size_t i = 0;
    for (const Param& p : layer.params()) {
      const Eigen::VectorXf& a = grads[0][i];
      const Eigen::VectorXf& b = grads[1][i];
      if (!b.allFinite())
        r.problems.push_back("grad of " + p.name + " is not finite after backward (sentinel NaN left or "
                             "accumulated into: the gradient must be assigned)");
      else if (a.size() != b.size() ||
               std::memcmp(a.data(), b.data(), static_cast<std::size_t>(a.size()) * sizeof(float)) != 0)
        r.problems.push_back("grad of " + p.name + " is not repeatable across two backward calls");
      ++i;
    }
  }
  if (dx[1].dimensions() != x.dimensions()) return r;

  // 4. central differences of f = sum(forward(.) .* G)
  Tensor xp = x;
  auto f_of_input = [&] { return detail::dot(layer.forward(xp), g); };
  std::vector<double> numeric(static_cast<std::size_t>(x.size()));
  for (Index i = 0; i < x.size(); ++i)
    numeric[static_cast<std::size_t>(i)] = detail::central_difference(xp.data()[i], o.eps, f_of_input);
  r.tensors.push_back(detail::compare("dx", dx[1].data(), numeric, o));

  auto f_of_params = [&] { return detail::dot(layer.forward(x), g); };
  std::size_t pi = 0;
  for (Param& p : layer.params()) {
    numeric.assign(static_cast<std::size_t>(p.size()), 0.0);
    for (Index j = 0; j < p.size(); ++j)
      numeric[static_cast<std::size_t>(j)] = detail::central_difference(p.value[j], o.eps, f_of_params);
    r.tensors.push_back(detail::compare(p.name, grads[1][pi].data(), numeric, o));
    ++pi;
  }

  for (const TensorCheck& t : r.tensors)
    if (t.scale == 0.0)
      r.problems.push_back("the numeric gradient of " + t.name +
                           " is zero everywhere: the check would prove nothing; choose another input");
  return r;
}

}  // namespace loom::testing

// Catch2 form: REQUIRE_GRADIENTS(layer, x) or REQUIRE_GRADIENTS(layer, x, options).
// Prints the per-tensor report when it fails.
#define REQUIRE_GRADIENTS(...)                                                    \
  do {                                                                            \
    const ::loom::testing::GradientReport loom_gc_report_ =                      \
        ::loom::testing::check_gradients(__VA_ARGS__);                            \
    INFO(loom_gc_report_.describe());                                             \
    REQUIRE(loom_gc_report_.ok());                                                \
  } while (false)
