// ExponentialMovingAverage: the average it puts in the model, its bad
// options, and a killed and resumed run ending with the same average.

#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <vector>

#include "loom/training/exponential_moving_average.hpp"
#include "temp_dir.hpp"
#include "toy_model.hpp"

using namespace loom;
using namespace loom::testing;
using Catch::Matchers::Contains;

namespace {

// Keeps the model's weights after every step.
struct StepWeights final : Callback {
  std::vector<std::vector<Eigen::VectorXf>> after_step;
  std::vector<Eigen::VectorXf> at_start;
  void on_train_begin(TrainingContext& c) override { at_start = loom::detail::weight_values(c.model()); }
  void on_batch_end(const BatchLogs&, TrainingContext& c) override {
    after_step.push_back(loom::detail::weight_values(c.model()));
  }
};

}  // namespace

TEST_CASE("ExponentialMovingAverage puts the average of the steps' weights in the model", "[callbacks][ema]") {
  const Quadrants d = quadrants(40, 4);
  Sequential m = small_cnn(3);
  StepWeights steps;
  ExponentialMovingAverage ema({.decay = 0.9f});
  m.fit(d.x, d.y, {.epochs = 2, .batch_size = 16, .verbose = 0, .callbacks = {&steps, &ema}});
  REQUIRE(steps.after_step.size() == 6);  // 3 batches of 40 images, 2 epochs
  CHECK(ema.steps() == 6);

  std::vector<Eigen::VectorXf> expected = steps.at_start;
  for (const auto& w : steps.after_step)
    for (std::size_t i = 0; i < w.size(); ++i) expected[i] = 0.9f * expected[i] + 0.1f * w[i];
  const std::vector<Eigen::VectorXf> got = loom::detail::weight_values(m);
  REQUIRE(got.size() == expected.size());
  double worst = 0.0, moved = 0.0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    worst = std::max(worst, static_cast<double>((got[i] - expected[i]).cwiseAbs().maxCoeff()));
    moved = std::max(moved, static_cast<double>((got[i] - steps.after_step.back()[i]).cwiseAbs().maxCoeff()));
  }
  CHECK(worst < 1e-6);
  CHECK(moved > 1e-4);  // the average is not the last step's weights
}

TEST_CASE("ExponentialMovingAverage refuses a bad decay and another model's average", "[callbacks][ema]") {
  for (const float decay : {0.0f, 1.0f, -0.5f, 1.5f, std::numeric_limits<float>::quiet_NaN()})
    CHECK_THROWS_AS(ExponentialMovingAverage({.decay = decay}), UsageError);
  CHECK_THROWS_WITH(ExponentialMovingAverage({.decay = 1.0f}), Contains("decay must be in (0, 1)"));
  CHECK_THROWS_WITH(ExponentialMovingAverage({.decay = -1e-10f}),
                    Contains("decay must be in (0, 1), got -1.00000001e-10"));
  ExponentialMovingAverage ema;
  CHECK_THROWS_WITH(ema.set_state({{1.0, 2.0}, {}, {}}), Contains("1 number"));

  // A resumed run (history not empty) whose saved average has another model's shapes.
  Sequential m = small_cnn(3);
  ema.set_state({{4.0}, {Eigen::VectorXf::Zero(2)}, {}});
  History history;
  history.epochs.emplace_back();
  TrainingContext context(m, history, 3, 1, false);
  CHECK_THROWS_WITH(ema.on_train_begin(context), Contains("belongs to another model"));
}

TEST_CASE("A resumed run ends with the same average as an uninterrupted one", "[callbacks][ema][checkpoint]") {
  const Quadrants d = quadrants(40, 4);
  TempDir dir;
  auto fit = [&](int epochs, ExponentialMovingAverage& ema, const std::filesystem::path& checkpoint = {}) {
    Sequential m = small_cnn(3);
    m.fit(d.x, d.y, {.epochs = epochs, .batch_size = 16, .verbose = 0, .checkpoint = checkpoint, .callbacks = {&ema}});
    return m;
  };
  ExponentialMovingAverage whole({.decay = 0.8f});
  Sequential uninterrupted = fit(3, whole);
  ExponentialMovingAverage first({.decay = 0.8f});
  fit(1, first, dir / "run.ckpt");
  ExponentialMovingAverage second({.decay = 0.8f});
  Sequential resumed = fit(3, second, dir / "run.ckpt");
  CHECK(second.steps() == whole.steps());
  CHECK(same_params(resumed, uninterrupted));
}
