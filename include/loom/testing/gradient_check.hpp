#pragma once
// A finite-difference gradient checker for any loom::Layer, built in or your
// own, after dlib's test_layer: call it from your tests.
//
//   loom::testing::GradientReport r = loom::testing::check_layer(layer, loom::Shape{8, 8, 3});
//   if (!r.ok()) std::cerr << r.describe();   // names the worst entry and its two values
//
// check_layer builds the layer for the input shape when it is not built yet
// (seeded), draws a batch of inputs (GradientCheckOptions::input says how) and
// calls check_gradients, which, given a layer and an input x:
//
//   1. checks that infer(x) gives exactly (bitwise) the output of forward(x)
//      in Mode::Inference (in training mode they may differ by design: batch
//      statistics, dropout);
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
// The layer runs in options.mode (Training by default; check both for layers
// that differ). Every trainable parameter is checked, a composite layer's
// sublayers' too ("conv2d/kernel"); non-trainable ones (moving statistics)
// are not differentiated. Layers that draw random numbers (Dropout) have
// their generators replayed, so every forward of the check draws the same.
//
// Entry i passes when |analytic - numeric| <= rtol * max(|analytic|, |numeric|)
// + atol * scale, where scale is the largest |numeric| entry of that tensor (at
// least 1e-3), so the test is independent of how large the gradients of a
// layer are; and each tensor's mean of error / tolerance over its entries must
// stay below mean_ratio, which catches an error spread thinly over every entry.
// With the defaults (eps 1e-2, rtol 2e-3, atol 2e-4) every correct float32
// layer of loom's own tests (tests/test_gradients.cpp) stays below 0.05 of the
// tolerance (the whole-model check there, with the loss's curvature, below
// 0.2), while a wrong formula (a transpose missing in conv or dense backward,
// col2im's channel order reversed, a ReLU or softmax derivative term missing, a
// bias gradient averaged instead of summed, max-pool routing to the wrong
// element) reaches 300 to 800 times it, and even a gradient 3% too large fails
// (13x). Each of those was tried on a deliberately broken copy of a layer; the
// tests keep a few of them as tests of this checker.
//
// Finite differences are only valid where f is smooth: keep inputs off ReLU
// kinks (|pre-activation| > eps times the largest |weight| or |input|) and keep
// the values inside a max-pool window at least 2 eps apart. InputKind and the
// helpers below (random_tensor, away_from_zero, distinct_tensor) make such
// inputs; when an entry fails, describe() says whether its one-sided
// differences disagree, the sign of a step across a kink rather than a wrong
// gradient.
//
// The checker changes the layer's parameters while it differentiates and puts
// every one back exactly, the moving statistics, generators and mode too. Thread safety: one layer at a time, from one thread.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <numeric>
#include <span>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "loom/layer.hpp"
#include "loom/random.hpp"
#include "loom/tensor.hpp"

namespace loom::testing {

/// How check_layer draws its input batch.
enum class InputKind {
  AwayFromZero,  // magnitudes uniform in [0.1, 1), random signs: off ReLU's kink at 0 (the default)
  Uniform,       // uniform in [-1, 1)
  Distinct,      // every value distinct, 0.05 apart: max-pool windows without ties
};

struct GradientCheckOptions {
  double eps = 1e-2;          // finite-difference half step
  double rtol = 2e-3;         // relative tolerance per entry
  double atol = 2e-4;         // absolute tolerance, as a fraction of the tensor's largest |numeric| entry
  double mean_ratio = 0.25;   // a tensor's mean of error / tolerance over its entries must stay below this
  std::uint64_t seed = 2024;  // seeds the upstream gradient G, check_layer's input and an unbuilt layer's weights
  Index batch = 2;            // check_layer: samples in the input batch
  InputKind input = InputKind::AwayFromZero;  // check_layer: how the input is drawn
  Mode mode = Mode::Training;  // the mode forward runs in
};

/// The outcome for one gradient tensor (dx, or one parameter).
struct TensorCheck {
  std::string name;           // "dx", "kernel", "bias"
  std::vector<Index> shape;   // dx: (N, H, W, C); a parameter: its Param::shape
  Index size = 0;
  double worst_ratio = 0.0;   // max over entries of error / tolerance; <= 1 passes
  double mean_ratio = 0.0;    // mean over entries of error / tolerance
  Index worst_index = -1;     // flat, row-major in shape
  double worst_analytic = 0.0, worst_numeric = 0.0;
  double worst_left = 0.0, worst_right = 0.0;  // one-sided differences at the worst entry
  double scale = 0.0;         // largest |numeric| entry

  /// The worst entry's coordinates in shape: "[1, 0, 2, 3]".
  std::string worst_coordinates() const {
    std::vector<Index> at(shape.size());
    Index rest = worst_index;
    for (std::size_t d = shape.size(); d-- > 0;) {
      at[d] = shape[d] > 0 ? rest % shape[d] : 0;
      rest = shape[d] > 0 ? rest / shape[d] : 0;
    }
    std::string out = "[";
    for (std::size_t d = 0; d < at.size(); ++d) out += (d ? ", " : "") + std::to_string(at[d]);
    return out + "]";
  }
};

struct GradientReport {
  std::vector<std::string> problems;  // sentinel left, not repeatable, infer != forward, shapes
  std::vector<TensorCheck> tensors;   // dx first, then each trainable parameter in for_each_param order
  GradientCheckOptions options;       // the tolerances the entries were judged by

  double worst_ratio() const {
    double w = 0.0;
    for (const TensorCheck& t : tensors) w = std::max(w, t.worst_ratio);
    return w;
  }
  bool ok() const {
    if (!problems.empty() || tensors.empty() || worst_ratio() > 1.0) return false;
    for (const TensorCheck& t : tensors)
      if (t.mean_ratio > options.mean_ratio) return false;
    return true;
  }

  std::string describe() const {
    std::ostringstream s;
    s.precision(6);
    for (const std::string& p : problems) s << "problem: " << p << '\n';
    for (const TensorCheck& t : tensors) {
      s << t.name << " (" << t.size << " entries, largest |numeric| " << t.scale << "): worst error/tolerance "
        << t.worst_ratio << " at " << t.worst_coordinates() << " analytic " << t.worst_analytic << " numeric "
        << t.worst_numeric << ", mean error/tolerance " << t.mean_ratio;
      if (t.worst_ratio > 1.0 && kink_at_worst(t))
        s << "; its one-sided differences disagree (" << t.worst_left << " left, " << t.worst_right
          << " right): the step crosses a kink (a ReLU at 0, a max-pool tie), so move the input, not the gradient";
      if (t.mean_ratio > options.mean_ratio) s << "; the mean is above " << options.mean_ratio;
      s << '\n';
    }
    return s.str();
  }

 private:
  // A central difference across a kink averages two different slopes; a
  // smooth function's one-sided slopes differ by its curvature times eps only.
  static bool kink_at_worst(const TensorCheck& t) {
    const double gap = std::abs(t.worst_left - t.worst_right);
    return gap > 0.5 * std::abs(t.worst_analytic - t.worst_numeric) && gap > 1e-3 * std::max(t.scale, 1e-3);
  }
};

// ---- inputs -------------------------------------------------------------

/// A tensor (n, h, w, c) of values uniform in [lo, hi).
inline Tensor random_tensor(Index n, Index h, Index w, Index c, Random& rng, float lo = -1.0f, float hi = 1.0f) {
  Tensor t(n, h, w, c);
  for (Index i = 0; i < t.size(); ++i) t.data()[i] = rng.uniform(lo, hi);
  return t;
}

/// A tensor (n, shape) of values uniform in [-1, 1), from its own generator seeded with `seed`.
inline Tensor random_tensor(Index n, const Shape& shape, std::uint64_t seed) {
  Random rng(seed);
  return random_tensor(n, shape[0], shape[1], shape[2], rng);
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

/// The largest |a[i] - b[i]| over n values; infinite when any difference is
/// NaN (std::max, and a running `if (!(d <= worst))`, let a NaN through).
inline float worst_difference(const float* a, const float* b, std::size_t n) {
  float worst = 0.0f;
  for (std::size_t i = 0; i < n; ++i) {
    const float d = std::abs(a[i] - b[i]);
    if (std::isnan(d)) return std::numeric_limits<float>::infinity();
    worst = std::max(worst, d);
  }
  return worst;
}

// ---- the checker ----------------------------------------------------------

namespace detail {

inline double dot(const Tensor& y, const Tensor& g) {
  double s = 0.0;
  for (Index i = 0; i < y.size(); ++i) s += static_cast<double>(y.data()[i]) * static_cast<double>(g.data()[i]);
  return s;
}

// A trainable parameter of the layer or of a sublayer ("conv2d/kernel").
struct NamedParam {
  std::string name;
  Param* param;
};

// What the check changes besides the parameters it differentiates: the mode,
// the non-trainable parameters (a training forward updates moving
// statistics) and the generators. Set for the check, restored after it.
class LayerState {
 public:
  LayerState(Layer& layer, Mode mode) : layer_(layer), mode_(layer.mode()) {
    for_each_param(layer, [&](Layer& owner, Param& p) {
      const std::string owner_name = owner.name().empty() ? std::string(owner.name_stem()) : owner.name();
      if (p.trainable) params.push_back({&owner == &layer ? p.name : owner_name + "/" + p.name, &p});
      else fixed_.push_back({&p, p.value});
    });
    for_each_layer(layer, [&](Layer& l) {
      if (Random* g = l.generator()) generators_.push_back({g, g->state()});
    });
    layer.set_mode(mode);
  }
  ~LayerState() {
    layer_.set_mode(mode_);
    restore();
  }
  LayerState(const LayerState&) = delete;
  LayerState& operator=(const LayerState&) = delete;

  // forward with every generator and non-trainable parameter as they were at the start.
  const Tensor& replayed_forward(const Tensor& x) {
    restore();
    return layer_.forward(x);
  }

  std::vector<NamedParam> params;

 private:
  void restore() {
    for (auto& [p, value] : fixed_) p->value = value;
    for (auto& [g, st] : generators_) g->set_state(st);
  }

  Layer& layer_;
  Mode mode_;
  std::vector<std::pair<Param*, Eigen::VectorXf>> fixed_;
  std::vector<std::pair<Random*, Random::State>> generators_;
};

// Compares analytic gradient entries with the numeric ones.
inline TensorCheck compare(std::string name, std::vector<Index> shape, const float* analytic,
                           const std::vector<double>& numeric, const GradientCheckOptions& o) {
  TensorCheck t;
  t.name = std::move(name);
  t.shape = std::move(shape);
  t.size = static_cast<Index>(numeric.size());
  for (double v : numeric)
    if (std::isfinite(v)) t.scale = std::max(t.scale, std::abs(v));
  const double floor = o.atol * std::max(t.scale, 1e-3);
  double sum = 0.0;
  for (std::size_t i = 0; i < numeric.size(); ++i) {
    const double a = analytic[i], n = numeric[i];
    const double err = std::abs(a - n);
    const double tol = o.rtol * std::max(std::abs(a), std::abs(n)) + floor;
    // A NaN on either side fails the entry: as a ratio it would compare false
    // against every bound and pass (a forward that breaks off the base point).
    const double ratio =
        std::isfinite(a) && std::isfinite(n) ? err / tol : std::numeric_limits<double>::infinity();
    sum += ratio;
    if (ratio > t.worst_ratio || t.worst_index < 0) {
      t.worst_ratio = ratio;
      t.worst_index = static_cast<Index>(i);
      t.worst_analytic = a;
      t.worst_numeric = n;
    }
  }
  t.mean_ratio = numeric.empty() ? 0.0 : sum / static_cast<double>(numeric.size());
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

// The one-sided differences at v (f0 = f at v): for the report's kink hint.
template <typename F>
void one_sided_differences(float& v, double eps, double f0, F&& f, double& left, double& right) {
  const float original = v;
  const float hi = static_cast<float>(original + eps), lo = static_cast<float>(original - eps);
  v = hi;
  right = (f() - f0) / (static_cast<double>(hi) - original);
  v = lo;
  left = (f0 - f()) / (original - static_cast<double>(lo));
  v = original;
}

}  // namespace detail

/// Checks a built layer's backward against finite differences at input x
/// (see the top of this file). A layer told set_needs_input_gradient(false)
/// has its parameter gradients checked and no dx.
inline GradientReport check_gradients(Layer& layer, const Tensor& x, const GradientCheckOptions& o = {}) {
  GradientReport r;
  r.options = o;
  if (!layer.built()) {
    r.problems.push_back("the layer is not built: call build(input_shape, rng) first, or check_layer");
    return r;
  }
  const float sentinel = std::numeric_limits<float>::quiet_NaN();
  const bool wants_dx = layer.needs_input_gradient();
  detail::LayerState state(layer, o.mode);
  auto forward = [&](const Tensor& in) -> const Tensor& { return state.replayed_forward(in); };

  // 1. infer gives exactly what forward gives in inference mode
  {
    layer.set_mode(Mode::Inference);
    const Tensor y_forward = forward(x);
    layer.set_mode(o.mode);
    Tensor y_infer;
    layer.infer(x, y_infer);
    if (!bitwise_equal(y_forward, y_infer))
      r.problems.push_back("infer(x) differs from forward(x) in inference mode: dimensions " + dims_string(y_infer) +
                           " vs " + dims_string(y_forward) + " or values");
  }
  const Tensor y = forward(x);

  // 2. the upstream gradient
  Random rng(o.seed);
  Tensor g(y.dimensions());
  for (Index i = 0; i < g.size(); ++i) g.data()[i] = rng.uniform(-1.0f, 1.0f);

  // 3. two rounds of forward + backward, grads pre-filled with the sentinel
  Tensor dx[2];
  std::vector<Eigen::VectorXf> grads[2];
  for (int round = 0; round < 2; ++round) {
    forward(x);
    for (const detail::NamedParam& p : state.params) p.param->grad.setConstant(sentinel);
    dx[round] = layer.backward(g);
    for (const detail::NamedParam& p : state.params) grads[round].push_back(p.param->grad);
  }
  const bool dx_fits = dx[1].dimensions() == x.dimensions();
  if (wants_dx && !dx_fits)
    r.problems.push_back("backward returned dx of dimensions " + dims_string(dx[1]) + " for an input of " +
                         dims_string(x));
  if (wants_dx && !bitwise_equal(dx[0], dx[1]))
    r.problems.push_back("backward is not repeatable: a second forward+backward on the same batch gave a "
                         "different dx (a buffer accumulates instead of being assigned?)");
  {
    std::size_t i = 0;
    for (const detail::NamedParam& p : state.params) {
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
  if (wants_dx && !dx_fits) return r;

  // 4. central differences of f = sum(forward(.) .* G), and the one-sided
  //    differences at each tensor's worst entry
  std::vector<double> numeric;
  auto check_tensor = [&](std::string name, std::vector<Index> shape, const float* analytic, float* values,
                          Index n, auto&& f) {
    numeric.assign(static_cast<std::size_t>(n), 0.0);
    for (Index i = 0; i < n; ++i) numeric[static_cast<std::size_t>(i)] = detail::central_difference(values[i], o.eps, f);
    TensorCheck t = detail::compare(std::move(name), std::move(shape), analytic, numeric, o);
    if (t.worst_index >= 0)
      detail::one_sided_differences(values[t.worst_index], o.eps, f(), f, t.worst_left, t.worst_right);
    r.tensors.push_back(std::move(t));
  };
  if (wants_dx) {
    Tensor xp = x;
    check_tensor("dx", {x.dimension(0), x.dimension(1), x.dimension(2), x.dimension(3)}, dx[1].data(), xp.data(),
                 x.size(), [&] { return detail::dot(forward(xp), g); });
  }
  std::size_t pi = 0;
  for (const detail::NamedParam& p : state.params)
    check_tensor(p.name, p.param->shape, grads[1][pi++].data(), p.param->value.data(), p.param->size(),
                 [&] { return detail::dot(forward(x), g); });

  for (const TensorCheck& t : r.tensors)
    if (t.scale == 0.0)
      r.problems.push_back("the numeric gradient of " + t.name +
                           " is zero everywhere: the check would prove nothing; choose another input");
  if (r.tensors.empty()) r.problems.push_back("nothing to check: the layer computes no dx and has no parameters");
  return r;
}

/// Builds `layer` for per-sample `input_shape` when it is not built yet
/// (weights from options.seed), draws options.batch samples of the kind
/// options.input says, and checks its gradients there (check_gradients).
/// A built layer must have been built for input_shape.
inline GradientReport check_layer(Layer& layer, const Shape& input_shape, const GradientCheckOptions& o = {}) {
  if (o.batch < 1) throw UsageError("check_layer: batch must be at least 1, got " + std::to_string(o.batch));
  if (!(o.eps > 0.0) || !(o.rtol >= 0.0) || !(o.atol >= 0.0) || !(o.mean_ratio > 0.0))
    throw UsageError("check_layer: eps and mean_ratio must be positive, rtol and atol not negative");
  Random rng(o.seed);
  if (!layer.built()) {
    layer.build(input_shape, rng);
  } else if (!(layer.input_shape() == input_shape)) {
    throw ShapeError("check_layer: the layer was built for input " + layer.input_shape().to_string() + ", not " +
                     input_shape.to_string());
  }
  const Index n = o.batch, h = input_shape.height(), w = input_shape.width(), c = input_shape.channels();
  Tensor x;
  switch (o.input) {
    case InputKind::Uniform: x = random_tensor(n, h, w, c, rng); break;
    case InputKind::Distinct: x = distinct_tensor(n, h, w, c, rng); break;
    default: x = away_from_zero(n, h, w, c, rng); break;
  }
  return check_gradients(layer, x, o);
}

}  // namespace loom::testing

