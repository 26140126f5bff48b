// A short run on the real Fashion-MNIST: the seed CNN, one epoch on the first
// 6,000 training images, scored on the full 10,000-image test set. Catches what
// synthetic data cannot: a loader that scrambles pixels or labels, a layer that
// learns but wrongly, an optimizer that barely moves.
// The data comes from the Debian package dataset-fashion-mnist (installed by
// scripts/install-deps.sh) or $LOOM_DATA_DIR.

#include <catch2/catch.hpp>

#include "loom/loom.hpp"

using namespace loom;


TEST_CASE("seed CNN learns Fashion-MNIST: 1 epoch on 6,000 images reaches 0.75 test accuracy", "[smoke][real-data]") {
  const auto dir = fashion_mnist::find_data_dir();
  const Dataset train = fashion_mnist::load_train(dir).head(6000);
  const Dataset test = fashion_mnist::load_test(dir);

  Sequential model = models::fashion_mnist_cnn(7);
  const Evaluation before = model.evaluate(test);
  const History h = model.fit(train, {.epochs = 1, .batch_size = 32, .seed = 7, .verbose = 0});
  const Evaluation after = model.evaluate(test);

  REQUIRE(h.epochs.size() == 1);
  CHECK(before.accuracy < 0.3);  // untrained: near chance, so the 0.75 below is learnt
  CHECK(after.loss < before.loss);
  CHECK(after.accuracy >= 0.75);
}
