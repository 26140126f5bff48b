// SGD, RMSprop and AdamW against their updates worked out in double (Keras's
// formulas, the headers give them), and what every optimizer shares:
// decoupled weight decay that skips biases and BatchNormalization, clipping
// by global norm, steps in parts, and the refusal of bad options.

#include <catch2/catch.hpp>

#include <array>
#include <cmath>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "loom/layers/batch_normalization.hpp"
#include "loom/layers/conv2d.hpp"
#include "loom/optimizers/adamw.hpp"
#include "loom/optimizers/rmsprop.hpp"
#include "loom/optimizers/sgd.hpp"
#include "loom/schedules/one_cycle.hpp"
#include "steps_in_parts.hpp"

using namespace loom;
using Catch::Contains;

namespace {

using Values = std::array<double, 3>;
const std::array<Values, 3> kGrads{{{0.5, -0.2, 0.0}, {0.3, 0.4, -1.0}, {-0.1, 0.0, 2.0}}};

Param kernel_of(const Values& w) {  // rank 2: a kernel, which decays
  Param p("kernel", {1, 3});
  for (int i = 0; i < 3; ++i) p.value[i] = static_cast<float>(w[i]);
  return p;
}

// Steps the optimizer over the three gradients of kGrads, and the reference
// step(w, g) in double alongside; the float values follow to float rounding.
template <typename Opt, typename RefStep>
void require_follows(Opt opt, Values w, RefStep ref_step) {
  Param p = kernel_of(w);
  Param* params[] = {&p};
  opt.build(params);
  for (const Values& g : kGrads) {
    for (int i = 0; i < 3; ++i) p.grad[i] = static_cast<float>(g[i]);
    opt.step(params);
    ref_step(w, g);
    for (int i = 0; i < 3; ++i) {
      INFO("step " << opt.steps() << ", element " << i);
      REQUIRE(p.value[i] == Approx(w[i]).margin(1e-6).epsilon(1e-5));
    }
  }
}

}  // namespace

TEST_CASE("SGD defaults are Keras's: lr 0.01, momentum 0, no Nesterov", "[optimizers]") {
  const SGD sgd;
  CHECK(sgd.options().learning_rate == 0.01f);
  CHECK(sgd.options().momentum == 0.0f);
  CHECK_FALSE(sgd.options().nesterov);
  CHECK(sgd.kind() == "SGD");
  CHECK(sgd.steps_in_parts());
}

TEST_CASE("SGD, plain, with momentum and with Nesterov momentum, against hand arithmetic", "[optimizers]") {
  // By hand, w = 1, g = 0.5 twice, lr 0.1, momentum 0.9:
  //   plain:     0.95, 0.9
  //   momentum:  u = -0.05, w = 0.95;  u = -0.095, w = 0.855
  //   Nesterov:  w = 1 + 0.9 (-0.05) - 0.05 = 0.905;  w = 0.905 + 0.9 (-0.095) - 0.05 = 0.7695
  auto two_steps = [](SGDOptions o) {
    Param p = kernel_of({1.0, 1.0, 1.0});
    Param* params[] = {&p};
    SGD sgd(o);
    sgd.build(params);
    std::array<float, 2> w{};
    for (float& x : w) {
      p.grad.setConstant(0.5f);
      sgd.step(params);
      x = p.value[0];
    }
    return w;
  };
  auto plain = two_steps({.learning_rate = 0.1f});
  CHECK(plain[0] == Approx(0.95));
  CHECK(plain[1] == Approx(0.9));
  auto momentum = two_steps({.learning_rate = 0.1f, .momentum = 0.9f});
  CHECK(momentum[0] == Approx(0.95));
  CHECK(momentum[1] == Approx(0.855));
  auto nesterov = two_steps({.learning_rate = 0.1f, .momentum = 0.9f, .nesterov = true});
  CHECK(nesterov[0] == Approx(0.905));
  CHECK(nesterov[1] == Approx(0.7695));

  SECTION("over three steps against the double reference") {
    const double lr = double{0.05f}, mu = double{0.8f};
    Values u{};
    require_follows(SGD({.learning_rate = 0.05f, .momentum = 0.8f, .nesterov = true}), {0.3, -0.7, 2.0},
                    [&](Values& w, const Values& g) {
                      for (int i = 0; i < 3; ++i) {
                        u[i] = mu * u[i] - lr * g[i];
                        w[i] += mu * u[i] - lr * g[i];
                      }
                    });
  }
}

TEST_CASE("RMSprop defaults are Keras's, and its update against the double reference", "[optimizers]") {
  const RMSprop defaults;
  CHECK(defaults.options().learning_rate == 1e-3f);
  CHECK(defaults.options().rho == 0.9f);
  CHECK(defaults.options().momentum == 0.0f);
  CHECK(defaults.options().epsilon == 1e-7f);
  CHECK_FALSE(defaults.options().centered);

  // By hand, w = 1, g = 0.5, lr 0.01, rho 0.9: v = 0.025, w = 1 - 0.01 * 0.5 / sqrt(0.025 + 1e-7) = 0.9683772
  Param p = kernel_of({1.0, 1.0, 1.0});
  Param* params[] = {&p};
  RMSprop one({.learning_rate = 0.01f});
  one.build(params);
  p.grad.setConstant(0.5f);
  one.step(params);
  CHECK(p.value[0] == Approx(0.9683772).epsilon(1e-6));

  for (const bool centered : {false, true})
    for (const float momentum : {0.0f, 0.7f}) {
      DYNAMIC_SECTION("centered " << centered << ", momentum " << momentum) {
        const double lr = double{0.01f}, rho = double{0.8f}, mu = double{momentum}, eps = double{1e-3f};
        Values v{}, a{}, u{};
        require_follows(RMSprop({.learning_rate = 0.01f, .rho = 0.8f, .momentum = momentum, .epsilon = 1e-3f,
                                 .centered = centered}),
                        {0.3, -0.7, 2.0}, [&](Values& w, const Values& g) {
                          for (int i = 0; i < 3; ++i) {
                            v[i] = rho * v[i] + (1 - rho) * g[i] * g[i];
                            a[i] = rho * a[i] + (1 - rho) * g[i];
                            const double d = centered ? v[i] - a[i] * a[i] + eps : v[i] + eps;
                            const double step = lr * g[i] / std::sqrt(d);
                            u[i] = mu * u[i] + step;
                            w[i] -= momentum > 0 ? u[i] : step;
                          }
                        });
      }
    }
}

TEST_CASE("AdamW is Adam after a decoupled decay of the weights", "[optimizers]") {
  CHECK(AdamW().weight_decay() == AdamW::kDefaultWeightDecay);
  CHECK(AdamW().kind() == "AdamW");
  const double lr = double{0.01f}, wd = double{0.1f}, b1 = double{0.9f}, b2 = double{0.999f}, eps = double{1e-7f};
  Values m{}, v{};
  int t = 0;
  require_follows(AdamW({.learning_rate = 0.01f, .weight_decay = 0.1f}), {0.3, -0.7, 2.0},
                  [&](Values& w, const Values& g) {
                    ++t;
                    const double lr_t = lr * std::sqrt(1 - std::pow(b2, t)) / (1 - std::pow(b1, t));
                    for (int i = 0; i < 3; ++i) {
                      w[i] -= lr * wd * w[i];
                      m[i] = b1 * m[i] + (1 - b1) * g[i];
                      v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i];
                      w[i] -= lr_t * m[i] / (std::sqrt(v[i]) + eps);
                    }
                  });
}

TEST_CASE("Weight decay shrinks kernels, not biases nor BatchNormalization's parameters, unless told", "[optimizers]") {
  Random rng(1);
  Conv2D conv({.filters = 2, .kernel = 3});
  conv.build(Shape{5, 5, 1}, rng);
  BatchNormalization bn;
  bn.build(Shape{3, 3, 2}, rng);
  CHECK(conv.params()[0].decays());   // kernel
  CHECK_FALSE(conv.params()[1].decays());  // bias
  for (const Param& p : bn.params()) CHECK_FALSE(p.decays());

  // With zero gradients only the decay moves anything: w (1 - lr wd) for a kernel.
  Param kernel = kernel_of({1.0, -2.0, 4.0}), bias("bias", {3});
  bias.value.setConstant(3.0f);
  auto step_once = [&](auto opt) {
    Param k = kernel, b = bias;
    Param* params[] = {&k, &b};
    opt.build(params);
    k.grad.setZero();
    b.grad.setZero();
    opt.step(params);
    return std::array<Eigen::VectorXf, 2>{k.value, b.value};
  };
  for (int which = 0; which < 3; ++which) {
    DYNAMIC_SECTION("optimizer " << which) {
      auto run = [&] {
        if (which == 0) return step_once(AdamW({.learning_rate = 0.1f, .weight_decay = 0.5f}));
        if (which == 1) return step_once(SGD({.learning_rate = 0.1f, .momentum = 0.9f, .weight_decay = 0.5f}));
        return step_once(RMSprop({.learning_rate = 0.1f, .weight_decay = 0.5f}));
      };
      auto [k, b] = run();
      CHECK(k[0] == Approx(1.0 * 0.95));
      CHECK(k[2] == Approx(4.0 * 0.95));
      CHECK(b == bias.value);  // untouched, bit for bit
      kernel.decay = false;
      bias.decay = true;
      auto [k2, b2] = run();
      CHECK(k2 == kernel.value);
      CHECK(b2[0] == Approx(3.0 * 0.95));
    }
  }
}

TEST_CASE("Clipping by global norm scales every gradient to the limit, and does nothing below it", "[optimizers]") {
  Param a("a", {2}), b("b", {1});
  Param* params[] = {&a, &b};
  a.grad << 3.0f, 4.0f;
  b.grad << 12.0f;  // global norm 13
  CHECK(global_gradient_norm(params) == Approx(13.0));
  clip_by_global_norm(params, 2.0);
  CHECK(global_gradient_norm(params) == Approx(2.0).epsilon(1e-6));
  CHECK(a.grad[0] / a.grad[1] == Approx(0.75));  // the direction is kept
  const Eigen::VectorXf before = a.grad;
  clip_by_global_norm(params, 2.5);
  CHECK(a.grad == before);  // below the limit: the same bits

  SECTION("an optimizer clips before its update, and then cannot step in parts") {
    a.value.setZero();
    b.value.setZero();
    SGD sgd({.learning_rate = 1.0f, .global_clipnorm = 1.0f});
    CHECK_FALSE(sgd.steps_in_parts());
    sgd.build(params);
    a.grad << 3.0f, 4.0f;
    b.grad << 0.0f;
    sgd.step(params);
    CHECK(a.value[0] == Approx(-0.6));
    CHECK(a.value[1] == Approx(-0.8));
    const float g[] = {1.0f};
    CHECK_THROWS_WITH(sgd.step_part(params, 0, g), Contains("cannot step on a part"));
  }
}

TEST_CASE("Clipping refuses a limit or a global_clipnorm that is not a finite, non-negative number", "[optimizers]") {
  Param a("a", {2});
  Param* params[] = {&a};
  a.grad << 3.0f, 4.0f;
  const double inf = std::numeric_limits<double>::infinity();
  // 0 would zero every gradient and a negative limit flip their signs.
  for (const auto& [limit, text] : std::vector<std::pair<double, std::string>>{
           {0.0, "0"}, {-2.0, "-2"}, {inf, "inf"}, {std::numeric_limits<double>::quiet_NaN(), "nan"}})
    CHECK_THROWS_WITH(clip_by_global_norm(params, limit),
                      Contains("clip_by_global_norm: limit must be positive and finite, got " + text));
  CHECK(a.grad[0] == 3.0f);
  CHECK(a.grad[1] == 4.0f);

  const float nanf = std::numeric_limits<float>::quiet_NaN(), inff = std::numeric_limits<float>::infinity();
  CHECK_THROWS_WITH(SGD({.global_clipnorm = nanf}),
                    Contains("SGD: global_clipnorm must not be negative (0: no clipping), got nan"));
  CHECK_THROWS_WITH(SGD({.global_clipnorm = inff}),
                    Contains("SGD: global_clipnorm must not be negative (0: no clipping), got inf"));
  CHECK_THROWS_WITH(AdamW({.global_clipnorm = inff}), Contains("AdamW: global_clipnorm must not be negative"));
  CHECK_THROWS_AS(RMSprop({.global_clipnorm = nanf}), UsageError);
}

TEST_CASE("Every optimizer's steps in parts give the bits of whole steps", "[optimizers]") {
  testing::require_parts_match_whole(
      [] { return SGD({.learning_rate = 0.05f, .momentum = 0.9f, .nesterov = true, .weight_decay = 0.01f}); });
  testing::require_parts_match_whole([] { return SGD({.learning_rate = 0.05f}); });
  testing::require_parts_match_whole([] {
    return RMSprop({.learning_rate = 0.01f, .momentum = 0.5f, .centered = true, .weight_decay = 0.01f});
  });
  testing::require_parts_match_whole([] {
    return AdamW({.learning_rate = 0.01f, .schedule = std::make_shared<OneCycle>(OneCycleOptions{.total_steps = 4})});
  });
}

TEST_CASE("A schedule gives the optimizer its rate at every step", "[optimizers]") {
  const OneCycle cycle({.max_learning_rate = 1.0, .total_steps = 10});
  SGD sgd({.schedule = std::make_shared<OneCycle>(cycle)});
  Param p = kernel_of({0.0, 0.0, 0.0});
  Param* params[] = {&p};
  sgd.build(params);
  for (long long t = 0; t < 4; ++t) {
    CHECK(sgd.current_learning_rate() == cycle.rate(t));
    const float before = p.value[0];
    p.grad.setConstant(1.0f);
    sgd.step(params);
    CHECK(before - p.value[0] == Approx(cycle.rate(t)).epsilon(1e-5));
  }
  SECTION("a copy of the optimizer has a schedule of its own") {
    auto copy = sgd.clone();
    CHECK(dynamic_cast<const SGD&>(*copy).schedule() != sgd.schedule());
  }
}

TEST_CASE("Bad optimizer options are UsageErrors naming the option and the value", "[optimizers]") {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  CHECK_THROWS_WITH(SGD({.learning_rate = -0.1f}), Contains("SGD: learning_rate must be positive, got -0.1"));
  CHECK_THROWS_AS(SGD({.learning_rate = nan}), UsageError);
  CHECK_THROWS_WITH(SGD({.momentum = 1.0f}), Contains("SGD: momentum must be in [0, 1), got 1"));
  CHECK_THROWS_WITH(SGD({.momentum = -0.5f}), Contains("momentum must be in [0, 1), got -0.5"));
  CHECK_THROWS_WITH(SGD({.weight_decay = -1.0f}), Contains("weight_decay must not be negative, got -1"));
  CHECK_THROWS_WITH(SGD({.global_clipnorm = -1.0f}), Contains("global_clipnorm must not be negative"));
  CHECK_THROWS_WITH(RMSprop({.rho = 1.0f}), Contains("RMSprop: rho must be in [0, 1), got 1"));
  CHECK_THROWS_WITH(RMSprop({.momentum = 2.0f}), Contains("RMSprop: momentum must be in [0, 1), got 2"));
  CHECK_THROWS_WITH(RMSprop({.epsilon = 0.0f}), Contains("RMSprop: epsilon must be positive, got 0"));
  CHECK_THROWS_WITH(AdamW({.learning_rate = 0.0f}), Contains("AdamW: learning_rate must be positive, got 0"));
  CHECK_THROWS_WITH(AdamW({.beta1 = 1.0f}), Contains("AdamW: beta1 must be in [0, 1), got 1"));
  CHECK_THROWS_WITH(AdamW({.weight_decay = nan}), Contains("AdamW: weight_decay must not be negative, got nan"));
  CHECK_NOTHROW(SGD({.momentum = 0.0f}));
  CHECK_NOTHROW(RMSprop({.rho = 0.0f, .momentum = 0.99f, .centered = true}));
}

TEST_CASE("SGD refuses Nesterov momentum without momentum, as PyTorch does", "[optimizers]") {
  CHECK_THROWS_WITH(SGD({.nesterov = true}), Contains("SGD: nesterov needs momentum > 0, got momentum 0"));
  CHECK_THROWS_AS(SGD({.momentum = 0.0f, .nesterov = true}), UsageError);
  CHECK_NOTHROW(SGD({.momentum = 0.5f, .nesterov = true}));
  CHECK_NOTHROW(SGD({.momentum = 0.0f, .nesterov = false}));
}
