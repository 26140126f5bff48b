// Flip test-time augmentation (loom/test_time_augmentation.hpp) through
// Sequential::predict and evaluate.

#include <catch2/catch.hpp>

#include <cmath>

#include "loom/data/sample_window.hpp"
#include "loom/layers/dense.hpp"
#include "loom/layers/flatten.hpp"
#include "loom/test_time_augmentation.hpp"
#include "toy_model.hpp"

using namespace loom;
using namespace loom::testing;
using Catch::Contains;

namespace {

// Each sample made its own mirror image: x(i, r, c) = x(i, r, W - 1 - c).
Tensor symmetric(Tensor x) {
  const Index w = x.dimension(2);
  for (Index i = 0; i < x.dimension(0); ++i)
    for (Index r = 0; r < x.dimension(1); ++r)
      for (Index c = 0; c < w / 2; ++c) x(i, r, w - 1 - c, 0) = x(i, r, c, 0);
  return x;
}

// (1, 2, 1) input, its two pixels as the logits of two classes.
Sequential pixels_as_logits(bool from_logits) {
  Sequential m(Shape{1, 2, 1});
  m.add(Flatten());
  m.add(Dense({.units = 2, .activation = from_logits ? Activation::None : Activation::Softmax}));
  m.compile(Adam(), SparseCategoricalCrossentropy({.from_logits = from_logits}));
  m.params()[0]->value << 1, 0, 0, 1;  // the identity kernel
  m.params()[1]->value.setZero();
  return m;
}

}  // namespace

TEST_CASE("Flip TTA equals plain predict on mirror-symmetric images", "[tta]") {
  Sequential m = small_cnn(3);
  const Quadrants d = quadrants(50, 4);
  m.fit(d.x, d.y, {.epochs = 1, .verbose = 0});
  const Tensor x = symmetric(d.x);
  CHECK(same_tensor(m.predict(x, 32, Tta::Flip), m.predict(x)));
  const Evaluation plain = m.evaluate(x, d.y), flipped = m.evaluate(x, d.y, 32, Tta::Flip);
  CHECK(flipped.loss == plain.loss);
  CHECK(flipped.accuracy == plain.accuracy);
}

TEST_CASE("Flip TTA is the mean of the probabilities of an image and its mirror", "[tta]") {
  Sequential m = small_cnn(3);
  const Quadrants d = quadrants(70, 4);
  m.fit(d.x, d.y, {.epochs = 1, .verbose = 0});
  Tensor mirrored;
  mirror_samples(d.x, mirrored);
  const Tensor a = m.predict(d.x), b = m.predict(mirrored), t = m.predict(d.x, 16, Tta::Flip);
  REQUIRE(t.dimensions() == a.dimensions());
  for (Index i = 0; i < t.size(); ++i) CHECK(t.data()[i] == Approx(0.5f * (a.data()[i] + b.data()[i])).margin(1e-7));
  // Quadrant classes change under a mirror, so here the two differ.
  CHECK(!same_tensor(t, a));
}

TEST_CASE("Flip TTA on a hand-built model: pixels as logits average to one half", "[tta]") {
  for (const bool from_logits : {false, true}) {
    INFO("from_logits " << from_logits);
    const Sequential m = pixels_as_logits(from_logits);
    Tensor x(1, 1, 2, 1);
    x.setValues({{{{2.0f}, {0.0f}}}});
    const Tensor plain = m.predict(x), tta = m.predict(x, 32, Tta::Flip);
    const float e = 1.0f / (1.0f + std::exp(-2.0f));  // softmax(2, 0)[0]
    CHECK(plain(0, 0, 0, 0) == Approx(e));
    CHECK(tta(0, 0, 0, 0) == Approx(0.5f));
    CHECK(tta(0, 0, 0, 1) == Approx(0.5f));
    const std::vector<Label> y{0};
    CHECK(m.evaluate(x, y).loss == Approx(-std::log(e)));
    CHECK(m.evaluate(x, y, 32, Tta::Flip).loss == Approx(std::log(2.0)));
  }
}

TEST_CASE("Flip TTA needs image inputs, and parse_tta names a bad value", "[tta]") {
  Sequential flat(Shape{4});
  flat.add(Dense({.units = 2, .activation = Activation::Softmax}));
  flat.compile(Adam());
  const Tensor x(3, 1, 1, 4);
  CHECK_THROWS_WITH(flat.predict(x, 32, Tta::Flip), Contains("image inputs"));
  CHECK_NOTHROW(flat.predict(x, 32, Tta::None));
  CHECK(parse_tta("flip") == Tta::Flip);
  CHECK(parse_tta("none") == Tta::None);
  CHECK_THROWS_WITH(parse_tta("rotate"), Contains("\"rotate\"") && Contains("flip"));
}
