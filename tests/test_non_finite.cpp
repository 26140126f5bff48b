// Non-finite values in training: fit stops with a NumericError naming the
// epoch, the batch and where the NaN or infinity first appeared, or skips the
// batch when asked to.

#include <catch2/catch.hpp>

#include <limits>

#include "loom/data/samples.hpp"
#include "toy_model.hpp"

using namespace loom;
using namespace loom::testing;
using Catch::Contains;

namespace {
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();
}  // namespace

TEST_CASE("A NaN weight stops fit at the first batch, naming the layer", "[non_finite]") {
  const Quadrants d = quadrants(96, 1);
  Sequential m = small_cnn(1);
  m.layer(3).params()[0].value[7] = kNaN;  // dense's kernel
  CHECK_THROWS_WITH(m.fit(d.x, d.y, {.epochs = 2, .batch_size = 32, .verbose = 0}),
                    Contains("epoch 1, batch 1 of 3") && Contains("the kernel of dense (Dense) is not finite"));
  CHECK_THROWS_AS(m.fit(d.x, d.y, {.epochs = 1, .verbose = 0}), NumericError);
}

TEST_CASE("An infinite input stops fit at its batch, or is skipped when asked", "[non_finite]") {
  Quadrants d = quadrants(96, 2);
  d.x(40, 3, 3, 0) = kInf;  // sample 40: batch 2 when not shuffled
  const FitOptions o{.epochs = 1, .batch_size = 32, .shuffle = false, .verbose = 0};

  Sequential stop = small_cnn(1);
  CHECK_THROWS_WITH(stop.fit(d.x, d.y, o), Contains("epoch 1, batch 2 of 3") && Contains("the input batch is not finite"));

  Sequential skip = small_cnn(1);
  FitOptions skipping = o;
  skipping.on_non_finite = NonFinite::SkipBatch;
  const History h = skip.fit(d.x, d.y, skipping);
  CHECK(h.last().skipped_batches == 1);
  CHECK(std::isfinite(h.last().loss));
  for (const Param* p : skip.params()) CHECK(p->value.allFinite());
  CHECK(skip.optimizer().state().steps == 2);  // the skipped batch made no step
}

TEST_CASE("A diverging run stops with the epoch and batch where the values overflowed", "[non_finite]") {
  const Quadrants d = quadrants(256, 3);
  Sequential m = small_cnn(1, /*learning_rate=*/1e30f);  // every step moves weights by about 1e30
  try {
    m.fit(d.x, d.y, {.epochs = 3, .batch_size = 16, .verbose = 0});
    FAIL("fit should have stopped on a non-finite value");
  } catch (const NumericError& e) {
    const std::string what = e.what();
    INFO(what);
    CHECK_THAT(what, Contains("fit: epoch 1, batch "));
    CHECK_THAT(what, Contains("is not finite"));
    CHECK_THAT(what, Contains("NonFinite::SkipBatch"));
  }
}
