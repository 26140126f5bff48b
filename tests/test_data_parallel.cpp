// Data-parallel fit (FitOptions::collective, training/data_parallel.hpp) with
// ranks as threads of this process (thread_collective.hpp), so the logic is
// tested without MPI and under the sanitizers. tests/mpi/ tests it under mpirun.

#include <catch2/catch.hpp>

#include <cmath>
#include <exception>
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
