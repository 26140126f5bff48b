// Data-parallel fit (FitOptions::collective, training/data_parallel.hpp) with
// ranks as threads of this process (thread_collective.hpp), so the logic is
// tested without MPI and under the sanitizers. tests/mpi/ tests it under mpirun.

#include <catch2/catch.hpp>

#include <cmath>
#include <exception>
#include <limits>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "loom/loom.hpp"
#include "thread_collective.hpp"
#include "toy_model.hpp"

using namespace loom;
using loom::testing::ThreadCollective;
using loom::testing::ThreadGroup;

namespace {

// Runs body(rank, collective) on `ranks` threads; rethrows nothing, returns each rank's error text.
template <typename Body>
std::vector<std::string> on_ranks(int ranks, Body body) {
  ThreadGroup group(ranks);
  std::vector<std::string> errors(static_cast<std::size_t>(ranks));
  std::vector<std::thread> threads;
  for (int r = 0; r < ranks; ++r)
    threads.emplace_back([&, r] {
      ThreadCollective c(group, r);
      try {
        body(r, c);
      } catch (const std::exception& e) {
        errors[static_cast<std::size_t>(r)] = e.what();
      }
    });
  for (std::thread& t : threads) t.join();
  return errors;
}

// Adam that cannot step in parts: data-parallel fit then sums with one
// allreduce and every rank takes the whole step (the path of any optimizer
// without steps_in_parts).
class WholeStepAdam final : public Optimizer {
 public:
  std::string_view kind() const override { return "WholeStepAdam"; }
  void build(std::span<Param* const> params) override { adam_.build(params); }
  void step(std::span<Param* const> params) override { adam_.step(params); }
  std::unique_ptr<Optimizer> clone() const override { return std::make_unique<WholeStepAdam>(*this); }
  State state() const override { return adam_.state(); }
  void set_state(State s) override { adam_.set_state(std::move(s)); }

 private:
  Adam adam_{{.learning_rate = 0.01f}};
};

}  // namespace

TEST_CASE("Data-parallel fit on 3 ranks ends with identical weights and History, close to one process") {
  // 289 samples in batches of 32: the last batch of 1 leaves two of three ranks without a sample.
  const testing::Quadrants d = testing::quadrants(289, 11), v = testing::quadrants(40, 12);
  const TensorSamples data(d.x, d.y, Shape{8, 8, 1}), validation(v.x, v.y, Shape{8, 8, 1});
  const FitOptions o{.epochs = 2, .batch_size = 32, .seed = 5, .verbose = 0, .validation_data = &validation};
  std::vector<Sequential> models;
  std::vector<History> histories(3);
  for (int r = 0; r < 3; ++r) models.push_back(testing::small_cnn(3 + static_cast<std::uint64_t>(r)));  // rank 0's weights win
  const std::vector<std::string> errors = on_ranks(3, [&](int r, Collective& c) {
    FitOptions shared = o;
    shared.collective = &c;
    histories[static_cast<std::size_t>(r)] = models[static_cast<std::size_t>(r)].fit(data, shared);
  });
  for (const std::string& e : errors) REQUIRE(e.empty());
  REQUIRE(testing::same_params(models[0], models[1]));
  REQUIRE(testing::same_params(models[0], models[2]));
  // Adam steps in parts, one block per rank; after fit every rank holds all of its state.
  REQUIRE(models[0].optimizer().steps_in_parts());
  CHECK(testing::same_optimizer_state(models[0], models[1]));
  CHECK(testing::same_optimizer_state(models[0], models[2]));
  for (int r = 1; r < 3; ++r)
    for (std::size_t e = 0; e < 2; ++e) {
      const EpochRecord &a = histories[0].epochs.at(e), &b = histories[static_cast<std::size_t>(r)].epochs.at(e);
      CHECK(a.loss == b.loss);
      CHECK(a.val_loss == b.val_loss);
      CHECK(a.seconds == b.seconds);
    }

  Sequential alone = testing::small_cnn(3);
  const History h = alone.fit(data, o);
  CHECK(testing::max_relative_difference(models[0], alone) < 1e-4);
  for (std::size_t e = 0; e < 2; ++e) {
    CHECK(histories[0].epochs[e].loss == Approx(h.epochs[e].loss).epsilon(1e-5));
    CHECK(histories[0].epochs[e].accuracy == h.epochs[e].accuracy);
    CHECK(*histories[0].epochs[e].val_accuracy == *h.epochs[e].val_accuracy);
  }
}

TEST_CASE("Data-parallel fit: steps in parts end with the bits of whole steps on every rank") {
  // The same training with an optimizer that cannot step in parts (one
  // allreduce, whole steps) and with Adam's steps in parts (a reduce-scatter,
  // each rank's block, an allgather): the thread ranks sum in rank order
  // either way, and Adam's parts are element-wise, so the weights and
  // moments agree bit for bit.
  const testing::Quadrants d = testing::quadrants(289, 11);
  const TensorSamples data(d.x, d.y, Shape{8, 8, 1});
  const FitOptions o{.epochs = 2, .batch_size = 32, .seed = 5, .verbose = 0};
  std::vector<Sequential> parts, whole;
  for (int r = 0; r < 3; ++r) {
    parts.push_back(testing::small_cnn(3));
    whole.push_back(testing::small_cnn(3));
    whole.back().compile(WholeStepAdam());
  }
  REQUIRE_FALSE(whole[0].optimizer().steps_in_parts());
  CHECK_THROWS_WITH(whole[0].optimizer().step_part(whole[0].params(), 0, {}), Catch::Contains("cannot step on a part"));
  std::vector<History> hp(3), hw(3);
  for (std::vector<Sequential>* models : {&parts, &whole}) {
    const std::vector<std::string> errors = on_ranks(3, [&](int r, Collective& c) {
      FitOptions shared = o;
      shared.collective = &c;
      const std::size_t i = static_cast<std::size_t>(r);
      (models == &parts ? hp : hw)[i] = (*models)[i].fit(data, shared);
    });
    for (const std::string& e : errors) REQUIRE(e.empty());
  }
  for (int r = 0; r < 3; ++r) {
    REQUIRE(testing::same_params(parts[static_cast<std::size_t>(r)], whole[0]));
    REQUIRE(testing::same_params(whole[static_cast<std::size_t>(r)], whole[0]));
    CHECK(testing::same_optimizer_state(parts[static_cast<std::size_t>(r)], whole[0]));
  }
  for (std::size_t e = 0; e < 2; ++e) {
    CHECK(hp[0].epochs[e].accuracy == hw[0].epochs[e].accuracy);
    CHECK(hp[0].epochs[e].loss == Approx(hw[0].epochs[e].loss).epsilon(1e-6));  // summed in double, or as a float
  }
}

TEST_CASE("Data-parallel fit stops on every rank alike at a non-finite value, and the rank that met it says where") {
  testing::Quadrants d = testing::quadrants(64, 11);
  d.x(20, 3, 3, 0) = std::nanf("");  // sample 20: in rank 1's half (16..31) of the first batch, unshuffled
  const TensorSamples data(d.x, d.y, Shape{8, 8, 1});
  std::vector<Sequential> models;
  for (int r = 0; r < 2; ++r) models.push_back(testing::small_cnn(3));
  const std::vector<std::string> errors = on_ranks(2, [&](int r, Collective& c) {
    models[static_cast<std::size_t>(r)].fit(
        data, {.epochs = 1, .batch_size = 32, .shuffle = false, .verbose = 0, .collective = &c});
  });
  CHECK_THAT(errors[0], Catch::Contains("epoch 1, batch 1 of 2") && Catch::Contains("a value on another rank is not finite"));
  CHECK_THAT(errors[1], Catch::Contains("the input batch is not finite (on rank 1)"));
  REQUIRE(testing::same_params(models[0], models[1]));  // neither stepped
}

TEST_CASE("Data-parallel fit refuses a global batch smaller than the rank count") {
  const testing::Quadrants d = testing::quadrants(8, 11);
  const TensorSamples data(d.x, d.y, Shape{8, 8, 1});
  ThreadGroup group(2);
  ThreadCollective c(group, 0);  // refused before any collective, so one rank alone can ask
  Sequential m = testing::small_cnn(3);
  CHECK_THROWS_WITH(m.fit(data, {.batch_size = 1, .verbose = 0, .collective = &c}),
                    Catch::Contains("batch_size 1 is the global batch, shared by 2 ranks"));
}

TEST_CASE("Data-parallel: gradients whose sum overflows, though every rank's are finite, are said to be so") {
  // Sums of finite floats can overflow: two ranks each weighing in a gradient
  // of FLT_MAX with weight 1 (local == global on both).
  std::vector<std::string> said(2);
  const std::vector<std::string> errors = on_ranks(2, [&](int r, Collective& c) {
    Param p("kernel", {40});
    p.grad.setConstant(std::numeric_limits<float>::max());
    Param* params[] = {&p};
    const Adam adam;
    const WholeStepAdam whole;
    for (const bool parts : {true, false}) {
      DataParallel dp(c, parts ? static_cast<const Optimizer&>(adam) : whole);
      BatchScore s{1.0, 1};
      if (dp.reduce_gradients(params, 1, 1, s)) throw std::runtime_error("the overflowed sum was taken as finite");
      said[static_cast<std::size_t>(r)] = dp.where_not_finite("");
    }
  });
  for (const std::string& e : errors) REQUIRE(e.empty());
  for (const std::string& text : said) CHECK_THAT(text, Catch::Contains("the sum overflowed"));

  // A rank with a value of its own names it; the others point to another rank.
  const std::vector<std::string> where = on_ranks(2, [&](int r, Collective& c) {
    DataParallel dp(c, Adam());
    throw std::runtime_error(dp.where_not_finite(r == 1 ? "the loss is not finite" : ""));
  });
  CHECK(where[0] == "a value on another rank is not finite");
  CHECK(where[1] == "the loss is not finite (on rank 1)");
}

TEST_CASE("Data-parallel fit with clipping takes whole steps, and every rank's schedule hears the same losses") {
  // Clipping needs the norm of every gradient, so the optimizer does not step
  // in parts: the allreduce path. ReduceOnPlateau hears each epoch's
  // validation loss, the same on every rank, so the rates stay alike.
  const testing::Quadrants d = testing::quadrants(96, 11), v = testing::quadrants(32, 12);
  const TensorSamples data(d.x, d.y, Shape{8, 8, 1}), validation(v.x, v.y, Shape{8, 8, 1});
  const FitOptions o{.epochs = 3, .batch_size = 32, .seed = 5, .verbose = 0, .validation_data = &validation};
  auto model = [] {
    Sequential m = testing::small_cnn(3);
    m.compile(SGD({.momentum = 0.9f, .nesterov = true, .weight_decay = 0.01f, .global_clipnorm = 0.5f,
                   .schedule = std::make_shared<ReduceOnPlateau>(ReduceOnPlateauOptions{
                       .initial_learning_rate = 0.05, .patience = 0, .min_delta = 1e300})}));
    return m;
  };
  std::vector<Sequential> models;
  for (int r = 0; r < 3; ++r) models.push_back(model());
  REQUIRE_FALSE(models[0].optimizer().steps_in_parts());
  const std::vector<std::string> errors = on_ranks(3, [&](int r, Collective& c) {
    FitOptions shared = o;
    shared.collective = &c;
    models[static_cast<std::size_t>(r)].fit(data, shared);
  });
  for (const std::string& e : errors) REQUIRE(e.empty());
  for (std::size_t r = 1; r < 3; ++r) {
    REQUIRE(testing::same_params(models[r], models[0]));
    CHECK(testing::same_optimizer_state(models[r], models[0]));
    CHECK(models[r].optimizer().state().schedule == models[0].optimizer().state().schedule);
  }
  CHECK(dynamic_cast<const SGD&>(models[0].optimizer()).current_learning_rate() == Approx(0.0005));
  Sequential alone = model();
  alone.fit(data, o);
  CHECK(testing::max_relative_difference(models[0], alone) < 1e-4);
}

TEST_CASE("Data-parallel fit with augmentation draws by position in the global batch, as one process does") {
  const testing::Quadrants d = testing::quadrants(128, 13);
  const TensorSamples data(d.x, d.y, Shape{8, 8, 1});
  const FitOptions o{.epochs = 2, .batch_size = 32, .seed = 5, .verbose = 0,
                     .augmentation = AugmentationOptions{.pad = 1, .horizontal_flip = true, .erasing = 0.5f}};
  std::vector<Sequential> models;
  for (int r = 0; r < 2; ++r) models.push_back(testing::small_cnn(3));
  const std::vector<std::string> errors = on_ranks(2, [&](int r, Collective& c) {
    FitOptions shared = o;
    shared.collective = &c;
    models[static_cast<std::size_t>(r)].fit(data, shared);
  });
  for (const std::string& e : errors) REQUIRE(e.empty());
  REQUIRE(testing::same_params(models[0], models[1]));
  Sequential alone = testing::small_cnn(3);
  alone.fit(data, o);
  // Only the summation order differs; drawing by a rank's own positions would change the data each rank saw.
  CHECK(testing::max_relative_difference(models[0], alone) < 1e-4);
}
