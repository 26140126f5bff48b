// Learning-rate schedules at their key steps (the formulas are in each
// header: Keras's and PyTorch's), ReduceOnPlateau's reductions and state,
// fit telling the schedule each epoch's loss, and bad options.

#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <numbers>
#include <string>
#include <utility>
#include <vector>

#include "loom/optimizers/sgd.hpp"
#include "loom/schedules/cosine_decay.hpp"
#include "loom/schedules/exponential_decay.hpp"
#include "loom/schedules/one_cycle.hpp"
#include "loom/schedules/reduce_on_plateau.hpp"
#include "loom/schedules/step_decay.hpp"
#include "toy_model.hpp"

using namespace loom;
using Catch::Contains;

TEST_CASE("StepDecay and ExponentialDecay", "[schedules]") {
  const StepDecay step({.initial_learning_rate = 1.0, .step_size = 10, .gamma = 0.5});
  CHECK(step.rate(0) == 1.0);
  CHECK(step.rate(9) == 1.0);
  CHECK(step.rate(10) == 0.5);
  CHECK(step.rate(25) == 0.25);

  const ExponentialDecay smooth({.initial_learning_rate = 0.1, .decay_steps = 100, .decay_rate = 0.5});
  CHECK(smooth.rate(0) == Approx(0.1));
  CHECK(smooth.rate(50) == Approx(0.1 * std::sqrt(0.5)));
  CHECK(smooth.rate(100) == Approx(0.05));
  const ExponentialDecay stairs({.initial_learning_rate = 0.1, .decay_steps = 100, .decay_rate = 0.5, .staircase = true});
  CHECK(stairs.rate(99) == Approx(0.1));
  CHECK(stairs.rate(200) == Approx(0.025));
}

TEST_CASE("CosineDecay warms up linearly to its target, then decays to alpha times it", "[schedules]") {
  const CosineDecay c({.initial_learning_rate = 0.01, .decay_steps = 100, .alpha = 0.1, .warmup_steps = 10,
                       .warmup_target = 0.1});
  CHECK(c.rate(0) == Approx(0.01));
  CHECK(c.rate(5) == Approx(0.055));
  CHECK(c.rate(10) == Approx(0.1));  // the end of the warm-up: the peak
  CHECK(c.rate(60) == Approx(0.1 * (0.9 * 0.5 + 0.1)));  // half-way: cos(pi / 2) = 0
  CHECK(c.rate(110) == Approx(0.01));
  CHECK(c.rate(1000) == Approx(0.01));
  const CosineDecay plain({.initial_learning_rate = 1.0, .decay_steps = 4});
  CHECK(plain.rate(0) == 1.0);
  CHECK(plain.rate(1) == Approx(0.5 * (1 + std::cos(std::numbers::pi / 4))));
  CHECK(plain.rate(4) == Approx(0.0).margin(1e-15));
}

TEST_CASE("OneCycle rises from max/div_factor to max at pct_start, then falls to max/div/final_div", "[schedules]") {
  const OneCycle c({.max_learning_rate = 1.0, .total_steps = 100});  // pct_start 0.3, div 25, final_div 1e4
  CHECK(c.rate(0) == Approx(0.04));
  CHECK(c.rate(29) == Approx(1.0));  // the peak: step pct_start * total - 1
  CHECK(c.rate(14) < c.rate(15));
  const double final_rate = 0.04 / 1e4;
  CHECK(c.rate(64) == Approx(final_rate + (1.0 - final_rate) / 2));  // half-way down
  CHECK(c.rate(99) == Approx(final_rate));  // the end
  CHECK(c.rate(150) == Approx(final_rate));
  // PyTorch's OneCycleLR(max_lr=1, total_steps=100) at step 10: the first phase 10/29 of the way.
  CHECK(c.rate(10) == Approx(1.0 + (0.04 - 1.0) / 2 * (std::cos(std::numbers::pi * 10 / 29) + 1)));
}

TEST_CASE("ReduceOnPlateau cuts the rate after patience epochs without improvement, down to min", "[schedules]") {
  ReduceOnPlateau r({.initial_learning_rate = 1.0, .factor = 0.5, .patience = 2, .min_learning_rate = 0.2,
                     .min_delta = 0.01});
  const double losses[] = {1.0, 0.995, 0.999, 0.5, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6};
  const double rates[] = {1.0, 1.0, 0.5, 0.5, 0.5, 0.25, 0.25, 0.2, 0.2, 0.2};
  for (int e = 0; e < 10; ++e) {
    r.end_epoch(losses[e]);
    INFO("epoch " << e);
    CHECK(r.rate(12345) == rates[e]);
  }
  CHECK(r.best() == 0.5);

  SECTION("its state is what a copy needs to continue alike") {
    ReduceOnPlateau fresh({.initial_learning_rate = 1.0, .factor = 0.5, .patience = 2, .min_learning_rate = 0.2,
                           .min_delta = 0.01});
    fresh.set_state(r.state());
    CHECK(fresh.state() == r.state());
    CHECK_THROWS_AS(fresh.set_state(std::vector<double>{1.0}), UsageError);
    CHECK_THROWS_AS(fresh.set_state(std::vector<double>{-1.0, 0.0, 0.0}), UsageError);
  }
}

TEST_CASE("fit tells the schedule each epoch's loss", "[schedules]") {
  const testing::Quadrants d = testing::quadrants(32, 4);
  Sequential m = testing::small_cnn(1);
  // min_delta so large that only the first epoch improves; patience 0: every later epoch halves the rate.
  m.compile(SGD({.schedule = std::make_shared<ReduceOnPlateau>(
                     ReduceOnPlateauOptions{.initial_learning_rate = 0.1, .factor = 0.5, .patience = 0,
                                            .min_delta = 1e300})}));
  m.fit(d.x, d.y, {.epochs = 3, .batch_size = 16, .verbose = 0});
  const auto& sgd = dynamic_cast<const SGD&>(m.optimizer());
  CHECK(sgd.current_learning_rate() == Approx(0.025));
  CHECK(dynamic_cast<const ReduceOnPlateau&>(*sgd.schedule()).best() == m.history().epochs[0].loss);
}

TEST_CASE("Bad schedule options are UsageErrors naming the option and the value", "[schedules]") {
  CHECK_THROWS_WITH(OneCycle({.max_learning_rate = 1.0, .total_steps = 0}),
                    Contains("OneCycle: total_steps must be positive, got 0"));
  CHECK_THROWS_WITH(OneCycle({.max_learning_rate = -1.0, .total_steps = 10}),
                    Contains("max_learning_rate must be positive, got -1"));
  CHECK_THROWS_WITH(OneCycle({.total_steps = 10, .pct_start = 1.0}), Contains("pct_start must be in (0, 1), got 1"));
  CHECK_THROWS_WITH(OneCycle({.total_steps = 10, .div_factor = 0.5}), Contains("div_factor must be at least 1"));
  CHECK_THROWS_WITH(StepDecay({.step_size = 0}), Contains("StepDecay: step_size must be positive, got 0"));
  CHECK_THROWS_WITH(StepDecay({.gamma = 2.0}), Contains("gamma must be in (0, 1], got 2"));
  CHECK_THROWS_WITH(ExponentialDecay({.decay_rate = 0.0}), Contains("decay_rate must be positive, got 0"));
  CHECK_THROWS_WITH(CosineDecay({.alpha = 1.5}), Contains("CosineDecay: alpha must be in [0, 1], got 1.5"));
  CHECK_THROWS_WITH(CosineDecay({.warmup_steps = 5}), Contains("warmup_steps must be 0 without a warmup_target"));
  CHECK_THROWS_WITH(CosineDecay({.initial_learning_rate = 0.0}), Contains("initial_learning_rate must be positive"));
  CHECK_NOTHROW(CosineDecay({.initial_learning_rate = 0.0, .warmup_steps = 5, .warmup_target = 1e-3}));
  CHECK_THROWS_WITH(ReduceOnPlateau({.factor = 1.0}), Contains("ReduceOnPlateau: factor must be in (0, 1), got 1"));
  CHECK_THROWS_WITH(ReduceOnPlateau({.patience = -1}), Contains("patience must not be negative, got -1"));
  CHECK_THROWS_WITH(ReduceOnPlateau({.min_learning_rate = 1.0}), Contains("min_learning_rate must be in [0, initial"));
}

TEST_CASE("Schedules refuse a bad initial rate, decay_steps, warm-up, final_div_factor or min_delta", "[schedules]") {
  const double nan = std::numeric_limits<double>::quiet_NaN(), inf = std::numeric_limits<double>::infinity();
  using Bad = std::vector<std::pair<double, std::string>>;  // a value and how the message prints it
  for (const auto& [rate, text] : Bad{{0.0, "0"}, {-1.0, "-1"}, {inf, "inf"}, {nan, "nan"}}) {
    const std::string got = " must be positive, got " + text;
    CHECK_THROWS_WITH(StepDecay({.initial_learning_rate = rate}), Contains("StepDecay: initial_learning_rate" + got));
    CHECK_THROWS_WITH(ExponentialDecay({.initial_learning_rate = rate}),
                      Contains("ExponentialDecay: initial_learning_rate" + got));
    CHECK_THROWS_WITH(CosineDecay({.initial_learning_rate = rate}),
                      Contains("CosineDecay: initial_learning_rate" + got));
    CHECK_THROWS_WITH(ReduceOnPlateau({.initial_learning_rate = rate}),
                      Contains("ReduceOnPlateau: initial_learning_rate" + got));
    CHECK_THROWS_WITH(CosineDecay({.warmup_steps = 5, .warmup_target = rate}),
                      Contains("CosineDecay: warmup_target" + got));
  }
  // A warm-up may start from 0, not from a negative or infinite rate.
  for (const auto& [rate, text] : Bad{{-1.0, "-1"}, {inf, "inf"}, {-inf, "-inf"}, {nan, "nan"}})
    CHECK_THROWS_WITH(CosineDecay({.initial_learning_rate = rate, .warmup_steps = 5, .warmup_target = 1e-3}),
                      Contains("CosineDecay: initial_learning_rate must not be negative, got " + text));
  for (const long long steps : {0LL, -5LL}) {
    const std::string got = " decay_steps must be positive, got " + std::to_string(steps);
    CHECK_THROWS_WITH(ExponentialDecay({.decay_steps = steps}), Contains("ExponentialDecay:" + got));
    CHECK_THROWS_WITH(CosineDecay({.decay_steps = steps}), Contains("CosineDecay:" + got));
  }
  CHECK_THROWS_WITH(CosineDecay({.warmup_steps = -1, .warmup_target = 1e-3}),
                    Contains("CosineDecay: warmup_steps must not be negative, got -1"));
  for (const auto& [factor, text] : Bad{{0.5, "0.5"}, {0.0, "0"}, {inf, "inf"}, {nan, "nan"}})
    CHECK_THROWS_WITH(OneCycle({.total_steps = 10, .final_div_factor = factor}),
                      Contains("OneCycle: final_div_factor must be at least 1, got " + text));
  for (const auto& [delta, text] : Bad{{-1e-10, "-1e-10"}, {-1.0, "-1"}, {inf, "inf"}, {nan, "nan"}})
    CHECK_THROWS_WITH(ReduceOnPlateau({.min_delta = delta}),
                      Contains("ReduceOnPlateau: min_delta must not be negative, got " + text));
}
