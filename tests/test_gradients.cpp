// Gradient checks: every layer's backward against finite differences of its
// forward (tests/gradient_check.hpp), the loss's gradients against finite
// differences of the batch mean loss, and a whole compiled Sequential's
// parameter gradients against finite differences of its loss.

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "built_layer.hpp"
#include "gradient_check.hpp"
#include "loom/layers/conv2d.hpp"
#include "loom/layers/dense.hpp"
#include "loom/layers/flatten.hpp"
#include "loom/layers/maxpool2d.hpp"
#include "loom/layers/relu.hpp"
#include "loom/layers/softmax.hpp"
#include "loom/loss.hpp"
#include "loom/optimizers/adam.hpp"
#include "loom/sequential.hpp"
#include "toy_model.hpp"

using namespace loom;
using loom::testing::built;
using loom::testing::check_gradients;
using loom::testing::distinct_tensor;
using loom::testing::GradientCheckOptions;
using loom::testing::random_tensor;

namespace {

constexpr double kEps = GradientCheckOptions{}.eps;


float max_abs(const float* v, Index n) {
  float m = 0.0f;
  for (Index i = 0; i < n; ++i) m = std::max(m, std::abs(v[i]));
  return m;
}

float min_abs(const Tensor& t) {
  float m = std::numeric_limits<float>::infinity();
  for (Index i = 0; i < t.size(); ++i) m = std::min(m, std::abs(t.data()[i]));
  return m;
}

// A random input in [-1, 1) for a layer with a fused ReLU whose every
// pre-activation z lies at least twice the largest change one finite-difference
// step can make (eps times the largest |x|, |w| or 1) away from the kink at 0,
// so central differences never straddle it. z comes from a twin layer without
// the activation, built from the same seed, hence with the same weights.
template <typename L, typename O>
Tensor relu_safe_input(O options, const Shape& in, Index n, std::uint64_t layer_seed) {
  O linear_options = options;
  linear_options.activation = Activation::None;
  L twin = built(L(linear_options), in, layer_seed);
  float wmax = 1.0f;
  for (const Param& p : twin.params()) wmax = std::max(wmax, max_abs(p.value.data(), p.size()));
  for (std::uint64_t seed = 1; seed < 1000; ++seed) {
    Random rng(seed);
    Tensor x = random_tensor(n, in.height(), in.width(), in.channels(), rng);
    if (min_abs(twin.forward(x)) > 2.0 * kEps * wmax) return x;
  }
  FAIL("no input keeps every pre-activation off the ReLU kink; shrink the layer");
  return {};
}

Tensor image(Index n, Index h, Index w, Index c, std::uint64_t seed) {
  Random rng(seed);
  return random_tensor(n, h, w, c, rng);
}

}  // namespace

// ---- Conv2D -----------------------------------------------------------------

TEST_CASE("Conv2D gradients, valid padding, stride 1, two input channels", "[gradient]") {
  Conv2D conv = built(Conv2D({.filters = 3, .kernel = 3}), Shape{5, 5, 2});
  REQUIRE_GRADIENTS(conv, image(2, 5, 5, 2, 1));
}

TEST_CASE("Conv2D gradients, same padding, stride 1", "[gradient]") {
  Conv2D conv = built(Conv2D({.filters = 2, .kernel = 3, .padding = Padding::Same}), Shape{4, 5, 2});
  REQUIRE_GRADIENTS(conv, image(2, 4, 5, 2, 2));
}

TEST_CASE("Conv2D gradients, valid padding, stride 2, kernel (2, 3)", "[gradient]") {
  Conv2D conv = built(Conv2D({.filters = 2, .kernel = {2, 3}, .strides = 2}), Shape{5, 7, 3});
  REQUIRE(conv.output_shape() == Shape{2, 3, 2});
  REQUIRE_GRADIENTS(conv, image(2, 5, 7, 3, 3));
}

TEST_CASE("Conv2D gradients, same padding, stride 2, kernel (2, 3), padding on one side and both", "[gradient]") {
  // height 6: out 3, total padding 0; width 5: out 3, total padding 2 (1 before, 1 after)
  Conv2D conv = built(Conv2D({.filters = 2, .kernel = {2, 3}, .strides = 2, .padding = Padding::Same}), Shape{6, 5, 2});
  REQUIRE(conv.output_shape() == Shape{3, 3, 2});
  REQUIRE_GRADIENTS(conv, image(2, 6, 5, 2, 4));
}

TEST_CASE("Conv2D gradients, unequal strides (1, 2) and same padding with an odd total", "[gradient]") {
  // kernel 4 on height 5, stride 1: total padding 3, 1 before and 2 after
  Conv2D conv = built(Conv2D({.filters = 2, .kernel = {4, 2}, .strides = {1, 2}, .padding = Padding::Same}),
                      Shape{5, 5, 2});
  REQUIRE(conv.output_shape() == Shape{5, 3, 2});
  REQUIRE_GRADIENTS(conv, image(1, 5, 5, 2, 5));
}

TEST_CASE("Conv2D gradients with fused ReLU, valid padding", "[gradient]") {
  const Conv2DOptions o{.filters = 2, .kernel = 3, .activation = Activation::ReLU};
  const Tensor x = relu_safe_input<Conv2D>(o, Shape{5, 5, 2}, 2, 21);
  Conv2D conv = built(Conv2D(o), Shape{5, 5, 2}, 21);
  REQUIRE_GRADIENTS(conv, x);
}

TEST_CASE("Conv2D gradients with fused ReLU, same padding, stride 2", "[gradient]") {
  const Conv2DOptions o{.filters = 2, .kernel = 3, .strides = 2, .padding = Padding::Same,
                        .activation = Activation::ReLU};
  const Tensor x = relu_safe_input<Conv2D>(o, Shape{5, 6, 2}, 2, 22);
  Conv2D conv = built(Conv2D(o), Shape{5, 6, 2}, 22);
  REQUIRE_GRADIENTS(conv, x);
}

TEST_CASE("Conv2D gradients of a first layer (the direct algorithm: ReLU's mask and the bias sum in its pass)",
          "[gradient]") {
  // few outputs (8 filters at the least): every pre-activation must stay off the kink
  for (const Padding padding : {Padding::Valid, Padding::Same}) {
    INFO((padding == Padding::Same ? "same" : "valid") << " padding");
    const Shape in = padding == Padding::Same ? Shape{3, 3, 1} : Shape{4, 5, 1};
    const Conv2DOptions o{.filters = 8, .kernel = 3, .padding = padding, .activation = Activation::ReLU};
    const Tensor x = relu_safe_input<Conv2D>(o, in, 1, 23);
    Conv2D conv = built(Conv2D(o), in, 23);
    conv.set_needs_input_gradient(false);
    REQUIRE(conv.algorithm() == ConvAlgorithm::Direct);
    REQUIRE_GRADIENTS(conv, x);
  }
}

// ---- MaxPool2D --------------------------------------------------------------

TEST_CASE("MaxPool2D gradients, default 2x2 pool", "[gradient]") {
  Random rng(31);
  MaxPool2D pool = built(MaxPool2D(), Shape{4, 4, 2});
  REQUIRE_GRADIENTS(pool, distinct_tensor(2, 4, 4, 2, rng));
}

TEST_CASE("MaxPool2D gradients, 2x2 pool on an odd size drops the last row and column", "[gradient]") {
  Random rng(32);
  MaxPool2D pool = built(MaxPool2D(), Shape{5, 5, 1});
  REQUIRE(pool.output_shape() == Shape{2, 2, 1});
  REQUIRE_GRADIENTS(pool, distinct_tensor(2, 5, 5, 1, rng));
}

TEST_CASE("MaxPool2D gradients, 3x3 pool with stride 2: overlapping windows", "[gradient]") {
  Random rng(33);
  MaxPool2D pool = built(MaxPool2D({.pool = 3, .strides = 2}), Shape{5, 5, 2});
  REQUIRE(pool.output_shape() == Shape{2, 2, 2});
  REQUIRE_GRADIENTS(pool, distinct_tensor(2, 5, 5, 2, rng));
}

TEST_CASE("MaxPool2D gradients, same padding", "[gradient]") {
  Random rng(34);
  MaxPool2D pool = built(MaxPool2D({.pool = 2, .padding = Padding::Same}), Shape{5, 5, 2});
  REQUIRE(pool.output_shape() == Shape{3, 3, 2});
  REQUIRE_GRADIENTS(pool, distinct_tensor(2, 5, 5, 2, rng));
  MaxPool2D pool3 = built(MaxPool2D({.pool = 3, .strides = 2, .padding = Padding::Same}), Shape{6, 5, 1});
  REQUIRE(pool3.output_shape() == Shape{3, 3, 1});
  REQUIRE_GRADIENTS(pool3, distinct_tensor(2, 6, 5, 1, rng));
}

TEST_CASE("MaxPool2D gradients, non-square pool (2, 3)", "[gradient]") {
  Random rng(35);
  MaxPool2D pool = built(MaxPool2D({.pool = {2, 3}}), Shape{4, 6, 2});
  REQUIRE(pool.output_shape() == Shape{2, 2, 2});
  REQUIRE_GRADIENTS(pool, distinct_tensor(2, 4, 6, 2, rng));
}

// ---- Flatten, Dense, ReLU, Softmax -------------------------------------------

TEST_CASE("Flatten gradients", "[gradient]") {
  Flatten flatten = built(Flatten(), Shape{2, 3, 2});
  REQUIRE_GRADIENTS(flatten, image(2, 2, 3, 2, 41));
}

TEST_CASE("Dense gradients, no activation", "[gradient]") {
  Dense dense = built(Dense({.units = 4}), Shape{5});
  REQUIRE_GRADIENTS(dense, image(3, 1, 1, 5, 42));
}

TEST_CASE("Dense gradients, ReLU activation", "[gradient]") {
  const DenseOptions o{.units = 4, .activation = Activation::ReLU};
  const Tensor x = relu_safe_input<Dense>(o, Shape{5}, 3, 43);
  Dense dense = built(Dense(o), Shape{5}, 43);
  REQUIRE_GRADIENTS(dense, x);
}

TEST_CASE("Dense gradients, softmax activation", "[gradient]") {
  Dense dense = built(Dense({.units = 4, .activation = Activation::Softmax}), Shape{5});
  REQUIRE_GRADIENTS(dense, image(3, 1, 1, 5, 44));
}

TEST_CASE("ReLU gradients, rank 3 and rank 1", "[gradient]") {
  Random rng(45);
  ReLU relu3 = built(ReLU(), Shape{3, 3, 2});
  REQUIRE_GRADIENTS(relu3, loom::testing::away_from_zero(2, 3, 3, 2, rng));
  ReLU relu1 = built(ReLU(), Shape{7});
  REQUIRE_GRADIENTS(relu1, loom::testing::away_from_zero(3, 1, 1, 7, rng));
}

TEST_CASE("Softmax gradients, rank 1", "[gradient]") {
  Random rng(46);
  Softmax softmax = built(Softmax(), Shape{5});
  REQUIRE_GRADIENTS(softmax, random_tensor(3, 1, 1, 5, rng, -2.0f, 2.0f));
}

TEST_CASE("Softmax gradients, rank 3 (over channels)", "[gradient]") {
  Random rng(47);
  Softmax softmax = built(Softmax(), Shape{2, 3, 4});
  REQUIRE_GRADIENTS(softmax, random_tensor(2, 2, 3, 4, rng, -2.0f, 2.0f));
}

// ---- the loss ---------------------------------------------------------------

namespace {

// Compares an analytic gradient with central differences of `loss` (a
// function of the tensor v, evaluated in double) at v.
void require_matches_numeric(const Tensor& analytic, Tensor v, const std::function<double(const Tensor&)>& loss,
                             double eps, const char* what) {
  REQUIRE(analytic.dimensions() == v.dimensions());
  std::vector<double> numeric(static_cast<std::size_t>(v.size()));
  for (Index i = 0; i < v.size(); ++i)
    numeric[static_cast<std::size_t>(i)] =
        loom::testing::detail::central_difference(v.data()[i], eps, [&] { return loss(v); });
  const auto t = loom::testing::detail::compare(what, {v.size()}, analytic.data(), numeric, GradientCheckOptions{});
  INFO(what << ": worst error/tolerance " << t.worst_ratio << " at [" << t.worst_index << "] analytic "
            << t.worst_analytic << " numeric " << t.worst_numeric);
  REQUIRE(t.scale > 0.0);
  REQUIRE(t.worst_ratio <= 1.0);
}

}  // namespace

TEST_CASE("Sparse cross-entropy from logits: dz = (softmax(z) - onehot) / N matches the mean loss", "[gradient]") {
  Random rng(61);
  const Tensor z = random_tensor(4, 1, 1, 5, rng, -3.0f, 3.0f);
  const std::vector<Label> labels{0, 4, 2, 2};
  Tensor dz;
  const BatchScore s = SparseCategoricalCrossentropy::from_logits(z, labels, &dz);
  auto mean_loss = [&](const Tensor& t) { return SparseCategoricalCrossentropy::from_logits(t, labels).loss_sum / 4.0; };

  // The loss itself, in double: log(sum exp z) - z_y per sample.
  double expected = 0.0;
  for (Index i = 0; i < 4; ++i) {
    double sum = 0.0;
    for (Index c = 0; c < 5; ++c) sum += std::exp(double{z(i, 0, 0, c)});
    expected += std::log(sum) - z(i, 0, 0, labels[static_cast<std::size_t>(i)]);
  }
  REQUIRE(s.loss_sum == Approx(expected).epsilon(1e-9));

  require_matches_numeric(dz, z, mean_loss, 1e-2, "dL/dz");
  // each row of dz sums to zero: softmax sums to 1, onehot sums to 1
  for (Index i = 0; i < 4; ++i) {
    double row = 0.0;
    for (Index c = 0; c < 5; ++c) row += dz(i, 0, 0, c);
    CHECK(std::abs(row) < 1e-6);
  }
}

TEST_CASE("Sparse cross-entropy from logits stays finite for huge logits", "[gradient]") {
  Tensor z(2, 1, 1, 3);
  z.setValues({{{{1000.0f, 0.0f, -1000.0f}}}, {{{1000.0f, 1000.0f, 1000.0f}}}});
  const std::vector<Label> labels{2, 1};
  Tensor dz;
  const BatchScore s = SparseCategoricalCrossentropy::from_logits(z, labels, &dz);
  REQUIRE(std::isfinite(s.loss_sum));
  REQUIRE(s.loss_sum == Approx(2000.0 + std::log(3.0)).epsilon(1e-6));
  REQUIRE(dz(0, 0, 0, 0) == Approx(0.5f));   // (1 - 0) / 2
  REQUIRE(dz(0, 0, 0, 2) == Approx(-0.5f));  // (0 - 1) / 2
  REQUIRE(dz(1, 0, 0, 1) == Approx((1.0 / 3.0 - 1.0) / 2.0));
  REQUIRE(dz(1, 0, 0, 0) == Approx(1.0 / 6.0));
}

TEST_CASE("Sparse cross-entropy from probabilities: dp matches the mean loss", "[gradient]") {
  Random rng(62);
  Tensor p = random_tensor(3, 1, 1, 4, rng, 0.1f, 1.0f);  // away from the clipping range
  const std::vector<Label> labels{1, 3, 0};
  Tensor dp;
  const BatchScore s = SparseCategoricalCrossentropy::from_probabilities(p, labels, &dp);
  double expected = 0.0;
  for (Index i = 0; i < 3; ++i) expected -= std::log(double{p(i, 0, 0, labels[static_cast<std::size_t>(i)])});
  REQUIRE(s.loss_sum == Approx(expected).epsilon(1e-9));
  auto mean_loss = [&](const Tensor& t) {
    return SparseCategoricalCrossentropy::from_probabilities(t, labels).loss_sum / 3.0;
  };
  require_matches_numeric(dp, p, mean_loss, 1e-3, "dL/dp");
  CHECK(dp(0, 0, 0, 0) == 0.0f);  // only the label's probability matters
  CHECK(dp(0, 0, 0, 1) == Approx(-1.0 / (3.0 * p(0, 0, 0, 1))));
}

TEST_CASE("Label smoothing: the loss against (1 - e) onehot + e / K, and its gradient, on both paths", "[gradient][label_smoothing]") {
  Random rng(63);
  const float e = 0.2f;
  const Index k = 5;
  const Tensor z = random_tensor(4, 1, 1, k, rng, -3.0f, 3.0f);
  const std::vector<Label> labels{0, 4, 2, 2};
  auto target = [&](Index i, Index c) {
    return (c == labels[static_cast<std::size_t>(i)] ? 1.0 - double{e} : 0.0) + double{e} / static_cast<double>(k);
  };
  // Closed form, in double: -sum_c t_c log softmax(z)_c.
  double expected = 0.0;
  Tensor p(4, 1, 1, k);
  for (Index i = 0; i < 4; ++i) {
    double sum = 0.0;
    for (Index c = 0; c < k; ++c) sum += std::exp(double{z(i, 0, 0, c)});
    for (Index c = 0; c < k; ++c) {
      const double log_p = double{z(i, 0, 0, c)} - std::log(sum);
      expected -= target(i, c) * log_p;
      p(i, 0, 0, c) = static_cast<float>(std::exp(log_p));
    }
  }

  Tensor dz;
  const BatchScore s = SparseCategoricalCrossentropy::from_logits(z, labels, &dz, e);
  CHECK(s.loss_sum == Approx(expected).epsilon(1e-9));
  require_matches_numeric(dz, z, [&](const Tensor& t) {
    return SparseCategoricalCrossentropy::from_logits(t, labels, nullptr, e).loss_sum / 4.0; }, 1e-2, "dL/dz");
  CHECK(dz(1, 0, 0, 4) == Approx((p(1, 0, 0, 4) - target(1, 4)) / 4.0));

  Tensor dp;
  const BatchScore sp = SparseCategoricalCrossentropy::from_probabilities(p, labels, &dp, e);
  CHECK(sp.loss_sum == Approx(expected).epsilon(1e-6));
  CHECK(sp.correct == s.correct);
  require_matches_numeric(dp, p, [&](const Tensor& t) {
    return SparseCategoricalCrossentropy::from_probabilities(t, labels, nullptr, e).loss_sum / 4.0; }, 1e-4, "dL/dp");

  SECTION("no smoothing gives the plain loss's bits") {
    Tensor plain, zero;
    CHECK(SparseCategoricalCrossentropy::from_logits(z, labels, &plain).loss_sum ==
          SparseCategoricalCrossentropy::from_logits(z, labels, &zero, 0.0f).loss_sum);
    CHECK(std::memcmp(plain.data(), zero.data(), sizeof(float) * static_cast<std::size_t>(plain.size())) == 0);
  }
  SECTION("label_smoothing outside [0, 1) is a UsageError naming it") {
    CHECK_THROWS_WITH(SparseCategoricalCrossentropy({.label_smoothing = 1.0f}), Catch::Contains("label_smoothing must be in [0, 1), got 1"));
    CHECK_THROWS_AS(SparseCategoricalCrossentropy({.label_smoothing = -0.1f}), UsageError);
  }
}

TEST_CASE("The static scoring paths refuse a smoothing label_smoothing refuses", "[gradient][label_smoothing]") {
  Tensor z(2, 1, 1, 3), p(2, 1, 1, 3);
  z.setZero();
  p.setConstant(1.0f / 3.0f);
  const std::vector<Label> labels{0, 2};
  using Bad = std::vector<std::pair<float, std::string>>;  // a smoothing and how the message prints it
  for (const auto& [e, text] : Bad{{1.0f, "1"}, {1.5f, "1.5"}, {-0.5f, "-0.5"}, {-1e-10f, "-1.00000001e-10"},
                                   {std::numeric_limits<float>::quiet_NaN(), "nan"}}) {
    const std::string message = "SparseCategoricalCrossentropy: label_smoothing must be in [0, 1), got " + text;
    CHECK_THROWS_WITH(SparseCategoricalCrossentropy::from_logits(z, labels, nullptr, e), Catch::Contains(message));
    CHECK_THROWS_WITH(SparseCategoricalCrossentropy::from_probabilities(p, labels, nullptr, e),
                      Catch::Contains(message));
    CHECK_THROWS_WITH(SparseCategoricalCrossentropy({.label_smoothing = e}), Catch::Contains(message));
  }
  CHECK_NOTHROW(SparseCategoricalCrossentropy::from_probabilities(p, labels, nullptr, 0.5f));
}

TEST_CASE("A model compiled with label smoothing trains and evaluates on the smoothed loss", "[gradient][label_smoothing]") {
  const testing::Quadrants d = testing::quadrants(32, 4);
  Sequential m = testing::small_cnn(5);
  m.compile(Adam({.learning_rate = 0.01f}), SparseCategoricalCrossentropy({.label_smoothing = 0.1f}));
  const History h = m.fit(d.x, d.y, {.epochs = 1, .batch_size = 16, .validation_split = 0.5, .verbose = 0});
  // evaluate reports the smoothed loss of the probabilities predict returns, as Keras's evaluate does.
  const Tensor p = m.predict(d.x);
  const double smoothed = SparseCategoricalCrossentropy::from_probabilities(p, d.y, nullptr, 0.1f).loss_sum / 32.0;
  const double plain = SparseCategoricalCrossentropy::from_probabilities(p, d.y).loss_sum / 32.0;
  CHECK(m.evaluate(d.x, d.y).loss == Approx(smoothed).epsilon(1e-12));
  CHECK(smoothed != Approx(plain));
  REQUIRE(h.epochs[0].val_loss);
  CHECK(std::isfinite(*h.epochs[0].val_loss));
}

TEST_CASE("Sparse cross-entropy from probabilities clips p to [1e-7, 1 - 1e-7], with zero gradient there",
          "[gradient]") {
  Tensor p(2, 1, 1, 2);
  p.setValues({{{{0.0f, 1.0f}}}, {{{0.5f, 0.5f}}}});
  const std::vector<Label> labels{0, 1};
  Tensor dp;
  const BatchScore s = SparseCategoricalCrossentropy::from_probabilities(p, labels, &dp);
  REQUIRE(std::isfinite(s.loss_sum));
  REQUIRE(s.loss_sum == Approx(-std::log(double{1e-7f}) - std::log(0.5)).epsilon(1e-6));
  CHECK(dp(0, 0, 0, 0) == 0.0f);
  CHECK(dp(1, 0, 0, 1) == Approx(-1.0 / (2.0 * 0.5)));
}

// ---- a whole model ----------------------------------------------------------

namespace {

enum class Ending { DenseSoftmax, SoftmaxLayer, Logits };

// conv 3x3 (2 filters) -> maxpool 2 -> flatten -> dense 3, ending as asked, on 6x6x1 images.
Sequential tiny_model(Ending ending) {
  Sequential m(Shape{6, 6, 1}, 71);
  m.add(Conv2D({.filters = 2, .kernel = 3}));
  m.add(MaxPool2D());
  m.add(Flatten());
  m.add(Dense({.units = 3, .activation = ending == Ending::DenseSoftmax ? Activation::Softmax : Activation::None}));
  if (ending == Ending::SoftmaxLayer) m.add(Softmax());
  m.compile(Adam(), SparseCategoricalCrossentropy({.from_logits = ending == Ending::Logits}));
  return m;
}

// The smallest gap between the largest and second-largest value of any 2x2
// pool window of a (N, H, W, C) tensor with even H and W.
float smallest_pool_gap(const Tensor& t) {
  float gap = std::numeric_limits<float>::infinity();
  for (Index n = 0; n < t.dimension(0); ++n)
    for (Index y = 0; y < t.dimension(1); y += 2)
      for (Index x = 0; x < t.dimension(2); x += 2)
        for (Index c = 0; c < t.dimension(3); ++c) {
          float v[4] = {t(n, y, x, c), t(n, y, x + 1, c), t(n, y + 1, x, c), t(n, y + 1, x + 1, c)};
          std::sort(v, v + 4);
          gap = std::min(gap, v[3] - v[2]);
        }
  return gap;
}

// Mean loss of the batch, in double, from what the layers computed in training mode.
double model_loss(Sequential& m, const Tensor& x, std::span<const Label> labels, bool fused) {
  const Tensor& out = m.forward(x);
  const Tensor& z = fused ? m.layer(m.size() - 1).logits() : out;
  return SparseCategoricalCrossentropy::from_logits(z, labels).loss_sum / static_cast<double>(x.dimension(0));
}

}  // namespace

TEST_CASE("A compiled Sequential's parameter gradients match finite differences of the batch mean loss",
          "[gradient]") {
  const Ending ending = GENERATE(Ending::DenseSoftmax, Ending::SoftmaxLayer, Ending::Logits);
  const bool fused = ending != Ending::Logits;
  Sequential model = tiny_model(ending);
  const std::vector<Label> labels{0, 2, 1, 2};

  // An input whose conv outputs have no near-ties inside a pool window: one
  // finite-difference step changes a conv output by at most eps * max(1, |x|).
  std::optional<Tensor> found;
  for (std::uint64_t seed = 1; seed < 2000 && !found; ++seed) {
    Random rng(seed);
    Tensor x = random_tensor(4, 6, 6, 1, rng, 0.0f, 1.0f);
    if (smallest_pool_gap(model.layer(0).forward(x)) > 4.0 * kEps) found = x;
  }
  REQUIRE(found);
  const Tensor& x = *found;

  for (Param* p : model.params()) p->grad.setConstant(std::numeric_limits<float>::quiet_NaN());
  model.forward(x);
  const BatchScore score = model.loss_and_backward(labels);
  const double loss = model_loss(model, x, labels, fused);
  REQUIRE(score.loss_sum / 4.0 == Approx(loss).epsilon(1e-6));
  // evaluate (inference path, Keras's clipped probabilities for a softmax model) agrees
  REQUIRE(model.evaluate(x, labels).loss == Approx(loss).epsilon(1e-5));

  std::size_t checked = 0;
  for (Param* p : model.params()) {
    INFO("parameter " << checked << " (" << p->name << ")");
    REQUIRE(p->grad.allFinite());
    Tensor analytic(1, 1, 1, p->size());
    std::copy_n(p->grad.data(), p->size(), analytic.data());
    std::vector<double> numeric(static_cast<std::size_t>(p->size()));
    for (Index j = 0; j < p->size(); ++j)
      numeric[static_cast<std::size_t>(j)] = loom::testing::detail::central_difference(
          p->value[j], kEps, [&] { return model_loss(model, x, labels, fused); });
    const auto t = loom::testing::detail::compare(p->name, p->shape, analytic.data(), numeric, GradientCheckOptions{});
    INFO("worst error/tolerance " << t.worst_ratio << " at [" << t.worst_index << "] analytic " << t.worst_analytic
                                  << " numeric " << t.worst_numeric);
    REQUIRE(t.scale > 0.0);
    REQUIRE(t.worst_ratio <= 1.0);
    ++checked;
  }
  REQUIRE(checked == 4);  // conv kernel, conv bias, dense kernel, dense bias
}
