// Adam against the update worked out by hand, in double, in Keras's form:
//   t += 1;  m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
//   w -= lr sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps)

#include <catch2/catch.hpp>

#include <array>
#include <cmath>
#include <limits>
#include <span>
#include <vector>

#include "loom/optimizers/adam.hpp"
#include "steps_in_parts.hpp"

using namespace loom;
using Catch::Contains;

namespace {

// The reference: one Adam run over a 3-element parameter, in double.
struct Reference {
  double lr, b1, b2, eps;
  std::array<double, 3> w, m{0, 0, 0}, v{0, 0, 0};
  int t = 0;

  void step(const std::array<double, 3>& g) {
    ++t;
    const double lr_t = lr * std::sqrt(1.0 - std::pow(b2, t)) / (1.0 - std::pow(b1, t));
    for (int i = 0; i < 3; ++i) {
      m[i] = b1 * m[i] + (1.0 - b1) * g[i];
      v[i] = b2 * v[i] + (1.0 - b2) * g[i] * g[i];
      w[i] -= lr_t * m[i] / (std::sqrt(v[i]) + eps);
    }
  }
};

Param make_param(const std::array<double, 3>& w) {
  Param p("w", {3});
  for (int i = 0; i < 3; ++i) p.value[i] = static_cast<float>(w[i]);
  return p;
}

void set_grad(Param& p, const std::array<double, 3>& g) {
  for (int i = 0; i < 3; ++i) p.grad[i] = static_cast<float>(g[i]);
}

// The float parameter agrees with the double reference to float rounding.
void require_close(const Param& p, const std::array<double, 3>& w) {
  for (int i = 0; i < 3; ++i) {
    INFO("element " << i);
    REQUIRE(p.value[i] == Approx(w[i]).margin(3e-7).epsilon(1e-6));
  }
}

}  // namespace

TEST_CASE("Adam defaults are Keras's: lr 1e-3, beta1 0.9, beta2 0.999, epsilon 1e-7", "[adam]") {
  const Adam adam;
  CHECK(adam.options().learning_rate == 1e-3f);
  CHECK(adam.options().beta1 == 0.9f);
  CHECK(adam.options().beta2 == 0.999f);
  CHECK(adam.options().epsilon == 1e-7f);
  CHECK(adam.kind() == "Adam");
  CHECK(adam.steps() == 0);
}

TEST_CASE("One and two Adam steps with the default options, against hand arithmetic", "[adam]") {
  Param p = make_param({1.0, -2.0, 0.5});
  Param* params[] = {&p};
  Adam adam;
  adam.build(params);

  // Step 1, g = (0.1, -0.2, 0.3):
  //   m = 0.1 g,  v = 0.001 g^2,  lr_t = 1e-3 * sqrt(0.001) / 0.1
  //   m / (sqrt(v) + eps) = 0.1 g / (sqrt(0.001) |g| + 1e-7), about sign(g) * 3.1623
  //   so each w moves by about 1e-3 against its gradient's sign.
  const double lr_t1 = 1e-3 * std::sqrt(1.0 - 0.999) / (1.0 - 0.9);
  const std::array<double, 3> g1{0.1, -0.2, 0.3};
  std::array<double, 3> w{1.0, -2.0, 0.5}, m{}, v{};
  for (int i = 0; i < 3; ++i) {
    m[i] = (1.0 - 0.9) * g1[i];
    v[i] = (1.0 - 0.999) * g1[i] * g1[i];
    w[i] -= lr_t1 * m[i] / (std::sqrt(v[i]) + 1e-7);
  }
  CHECK(w[0] == Approx(1.0 - 1e-3).epsilon(1e-5));  // the hand arithmetic itself: one lr against sign(g)
  CHECK(w[1] == Approx(-2.0 + 1e-3).epsilon(1e-5));

  set_grad(p, g1);
  adam.step(params);
  CHECK(adam.steps() == 1);
  require_close(p, w);
  for (int i = 0; i < 3; ++i) {
    CHECK(adam.first_moments()[0][i] == Approx(m[i]).epsilon(1e-6));
    CHECK(adam.second_moments()[0][i] == Approx(v[i]).epsilon(1e-4));  // 1 - 0.999f is 1.3e-5 off 0.001
  }

  // Step 2, g = (-0.05, 0.4, 0.3):
  //   m = 0.9 m + 0.1 g,  v = 0.999 v + 0.001 g^2,  lr_t = 1e-3 * sqrt(1 - 0.999^2) / (1 - 0.9^2)
  const double lr_t2 = 1e-3 * std::sqrt(1.0 - 0.999 * 0.999) / (1.0 - 0.9 * 0.9);
  const std::array<double, 3> g2{-0.05, 0.4, 0.3};
  for (int i = 0; i < 3; ++i) {
    m[i] = 0.9 * m[i] + 0.1 * g2[i];
    v[i] = 0.999 * v[i] + 0.001 * g2[i] * g2[i];
    w[i] -= lr_t2 * m[i] / (std::sqrt(v[i]) + 1e-7);
  }
  set_grad(p, g2);
  adam.step(params);
  CHECK(adam.steps() == 2);
  require_close(p, w);
}

TEST_CASE("Adam with other options, where epsilon matters, over three steps", "[adam]") {
  const AdamOptions o{.learning_rate = 0.1f, .beta1 = 0.8f, .beta2 = 0.9f, .epsilon = 1e-2f};
  // The reference takes the float options exactly as the optimizer sees them.
  Reference ref{double{o.learning_rate}, double{o.beta1}, double{o.beta2}, double{o.epsilon}, {0.3, -0.7, 2.0}};
  Param p = make_param(ref.w);
  Param* params[] = {&p};
  Adam adam(o);
  adam.build(params);
  const std::array<std::array<double, 3>, 3> grads{{{0.02, -0.5, 1.5}, {-0.01, 0.25, 0.0}, {0.004, 0.0, -3.0}}};
  for (const auto& g : grads) {
    set_grad(p, g);
    adam.step(params);
    ref.step(g);
    INFO("step " << ref.t);
    require_close(p, ref.w);
  }
  // Spot-check the reference by hand at step 1 for the first element:
  //   m = 0.2 * 0.02 = 0.004, v = 0.1 * 0.0004 = 4e-5, sqrt(v) = 0.0063246
  //   lr_t = 0.1 * sqrt(0.1) / 0.2 = 0.158114
  //   step = 0.158114 * 0.004 / (0.0063246 + 0.01) = 0.038743
  Reference one{double{o.learning_rate}, double{o.beta1}, double{o.beta2}, double{o.epsilon}, {0.3, -0.7, 2.0}};
  one.step(grads[0]);
  CHECK(0.3 - one.w[0] == Approx(0.038743).epsilon(1e-4));
}

TEST_CASE("Adam counts steps once per step, not once per parameter tensor", "[adam]") {
  // Two identical tensors with identical gradients must get identical updates:
  // a counter advanced per tensor would give the second one t = 2's correction.
  Param a = make_param({1.0, 2.0, 3.0});
  Param b = make_param({1.0, 2.0, 3.0});
  Param* params[] = {&a, &b};
  Adam adam;
  adam.build(params);
  set_grad(a, {0.5, -0.5, 0.25});
  set_grad(b, {0.5, -0.5, 0.25});
  adam.step(params);
  CHECK(adam.steps() == 1);
  REQUIRE(a.value == b.value);
  CHECK(a.value[0] == Approx(1.0 - 1e-3).epsilon(1e-5));

  SECTION("build starts over") {
    adam.build(params);
    CHECK(adam.steps() == 0);
    CHECK(adam.first_moments()[0].isZero(0.0));
  }
}

TEST_CASE("Invalid Adam options are UsageErrors", "[adam]") {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  REQUIRE_THROWS_AS(Adam({.learning_rate = 0.0f}), UsageError);
  REQUIRE_THROWS_WITH(Adam({.learning_rate = -1.0f}), Contains("learning_rate must be positive"));
  REQUIRE_THROWS_AS(Adam({.learning_rate = nan}), UsageError);
  REQUIRE_THROWS_AS(Adam({.beta1 = 1.0f}), UsageError);
  REQUIRE_THROWS_WITH(Adam({.beta1 = -0.1f}), Contains("beta1 must be in [0, 1)"));
  REQUIRE_THROWS_AS(Adam({.beta1 = nan}), UsageError);
  REQUIRE_THROWS_AS(Adam({.beta2 = 1.0f}), UsageError);
  REQUIRE_THROWS_WITH(Adam({.beta2 = 1.5f}), Contains("beta2 must be in [0, 1)"));
  REQUIRE_THROWS_AS(Adam({.epsilon = 0.0f}), UsageError);
  REQUIRE_THROWS_WITH(Adam({.epsilon = -1e-7f}), Contains("epsilon must be positive"));
  REQUIRE_NOTHROW(Adam({.beta1 = 0.0f, .beta2 = 0.0f}));
}

TEST_CASE("Adam refuses to step over other parameters than it was built for", "[adam]") {
  Param a = make_param({1.0, 2.0, 3.0});
  Param b = make_param({1.0, 2.0, 3.0});
  Param* one[] = {&a};
  Param* two[] = {&a, &b};
  Adam adam;
  adam.build(one);
  REQUIRE_THROWS_AS(adam.step(two), UsageError);
  REQUIRE_THROWS_WITH(adam.step(two), Contains("built for 1"));
}

TEST_CASE("Adam's steps in parts give every value the bits of whole steps", "[adam]") {
  testing::require_parts_match_whole([] { return Adam({.learning_rate = 0.01f}); });
}
