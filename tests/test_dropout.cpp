// Dropout: its gradients, the statistics of its masks, the identity outside
// training, masks fixed by the model's seed and independent of the thread
// count, training through fit, and its rate in model files.

#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <vector>

#include "gradient_check.hpp"
#include "layer_option_file.hpp"
#include "loom/layers/dropout.hpp"
#include "loom/threads.hpp"

using namespace loom;
using namespace loom::testing;

namespace {

// 262,144 values, none 0: sixteen of for_blocks' blocks, so the parallel path runs.
Tensor large_input(std::uint64_t seed) {
  Random rng(seed);
  return away_from_zero(64, 32, 32, 4, rng);
}

Dropout built(float rate, std::uint64_t seed = 3) {
  Dropout d(rate);
  Random rng(seed);
  d.build(Shape{32, 32, 4}, rng);
  return d;
}

std::vector<bool> dropped(const Tensor& y) {
  std::vector<bool> d(static_cast<std::size_t>(y.size()));
  for (Index i = 0; i < y.size(); ++i) d[static_cast<std::size_t>(i)] = y.data()[i] == 0.0f;
  return d;
}

}  // namespace

TEST_CASE("Dropout's backward matches finite differences in training and inference", "[dropout][gradient_check]") {
  Dropout layer(0.5f);
  REQUIRE_LAYER_GRADIENTS(layer, Shape{4, 4, 3}, {.mode = Mode::Training});
  REQUIRE_LAYER_GRADIENTS(layer, Shape{4, 4, 3}, {.mode = Mode::Inference});
}

// A drop is a Bernoulli(rate) draw: over n independent elements the fraction
// dropped has standard deviation sqrt(rate (1 - rate) / n), under 1e-3 here;
// 6 of them bound it (a correct layer fails with probability about 2e-9; the
// seed is fixed anyway), while a rate off by 0.01 is 10 of them away. The
// rate is rounded to a multiple of 2^-16, far inside the bound.
TEST_CASE("Dropout drops the rate's fraction and scales the rest by 1 / (1 - rate)", "[dropout]") {
  const Tensor x = large_input(1);
  const double n = static_cast<double>(x.size());
  for (const float rate : {0.1f, 0.3f, 0.5f, 0.75f, 0.9f}) {
    INFO("rate " << rate);
    Dropout layer = built(rate);
    const Tensor& y = layer.forward(x);
    const double expected = 1.0 / (1.0 - static_cast<double>(rate));
    Index zeros = 0, wrong = 0;
    for (Index i = 0; i < x.size(); ++i) {
      if (y.data()[i] == 0.0f) {
        ++zeros;
        continue;
      }
      // x * float(1 / (1 - rate)): two roundings of 2^-24 each at most
      const double want = static_cast<double>(x.data()[i]) * expected;
      if (std::abs(y.data()[i] - want) > 0x1p-23 * std::abs(want)) ++wrong;
    }
    CHECK(wrong == 0);
    const double sigma = std::sqrt(rate * (1.0 - rate) / n);
    CHECK(std::abs(static_cast<double>(zeros) / n - rate) < 6.0 * sigma);
  }
  for (const float rate : {0.5f, 0.75f}) {  // exactly x / (1 - rate) where that scale is a power of 2
    Dropout layer = built(rate);
    const Tensor& y = layer.forward(x);
    Index wrong = 0;
    for (Index i = 0; i < x.size(); ++i)
      if (y.data()[i] != 0.0f && y.data()[i] != x.data()[i] / (1.0f - rate)) ++wrong;
    CHECK(wrong == 0);
  }
}

// Independent draws agree at two positions with probability 1/2 at rate 0.5,
// whatever their distance: the same 6-sigma bound, sqrt(0.25 / n). Distances
// within one 64-bit draw, across draws, and across blocks (16,384 elements):
// a block or a draw's bits reused would agree far more often.
TEST_CASE("Dropout's masks show no pattern across positions", "[dropout]") {
  Dropout layer = built(0.5f);
  const std::vector<bool> d = dropped(layer.forward(large_input(2)));
  for (const std::size_t shift : {1u, 2u, 3u, 4u, 5u, 8u, 256u, 4096u, 16384u, 32768u, 131072u}) {
    INFO("shift " << shift);
    const std::size_t pairs = d.size() - shift;
    std::size_t same = 0;
    for (std::size_t i = 0; i < pairs; ++i) same += d[i] == d[i + shift];
    CHECK(std::abs(static_cast<double>(same) / static_cast<double>(pairs) - 0.5) <
          6.0 * std::sqrt(0.25 / static_cast<double>(pairs)));
  }
}

TEST_CASE("Dropout is the identity in inference, in infer and at rate 0, and draws nothing there", "[dropout]") {
  const Tensor x = large_input(3);
  Random rng(4);
  const Tensor dy = random_tensor(64, 32, 32, 4, rng);
  auto check_identity = [&](Dropout& layer) {
    const Random::State before = layer.generator()->state();
    CHECK(bitwise_equal(layer.forward(x), x));
    CHECK(bitwise_equal(layer.backward(dy), dy));
    CHECK(layer.generator()->state() == before);
  };
  SECTION("inference") {
    Dropout layer = built(0.5f);
    layer.set_mode(Mode::Inference);
    check_identity(layer);
    Tensor y;
    layer.infer(x, y);
    CHECK(bitwise_equal(y, x));
  }
  SECTION("rate 0 in training") {
    Dropout layer = built(0.0f);
    REQUIRE(layer.mode() == Mode::Training);
    check_identity(layer);
  }
}

TEST_CASE("Dropout's backward applies the forward's mask and scale", "[dropout]") {
  Dropout layer = built(0.3f);
  const Tensor x = large_input(5);
  const Tensor y = layer.forward(x);
  Tensor ones(x.dimensions());
  ones.setConstant(1.0f);
  const Tensor& dx = layer.backward(ones);  // the mask itself: 0 or one scale
  const float scale = 1.0f / 0.7f;
  Index wrong = 0;
  for (Index i = 0; i < x.size(); ++i) {
    const float m = dx.data()[i];
    if ((m != 0.0f && std::abs(m - scale) > 1e-6f * scale) || m * x.data()[i] != y.data()[i]) ++wrong;
  }
  CHECK(wrong == 0);
  Random rng(6);
  CHECK_THROWS_AS(layer.backward(random_tensor(2, 32, 32, 4, rng)), ShapeError);
}

TEST_CASE("The model's seed fixes Dropout's masks, and each training forward draws a new one", "[dropout]") {
  Random rng(6);
  const Tensor x = away_from_zero(64, 1, 1, 4096, rng);
  auto first_forward = [&](std::uint64_t seed) {
    Sequential m(Shape{4096}, seed);
    m.add(Dropout(0.5f));
    return Tensor(m.forward(x));
  };
  CHECK(bitwise_equal(first_forward(1), first_forward(1)));
  CHECK_FALSE(bitwise_equal(first_forward(1), first_forward(2)));

  Sequential m(Shape{4096}, 1);
  m.add(Dropout(0.5f));
  const Tensor a = m.forward(x);
  const Tensor b = m.forward(x);
  CHECK_FALSE(bitwise_equal(a, b));
  CHECK(bitwise_equal(a, first_forward(1)));
}

TEST_CASE("Dropout's masks are the same on 1 and 2 threads", "[dropout][threads]") {
  const Tensor x = large_input(7);
  const int saved = threads();
  auto run = [&](int n) {
    set_threads(n);
    Dropout layer = built(0.4f, 9);
    std::vector<Tensor> out;
    for (int i = 0; i < 2; ++i) {  // two forwards: the generator moves alike too
      out.push_back(layer.forward(x));
      out.push_back(layer.backward(x));
    }
    set_threads(saved);
    return out;
  };
  const std::vector<Tensor> one = run(1), two = run(2);
  for (std::size_t i = 0; i < one.size(); ++i) CHECK(bitwise_equal(one[i], two[i]));
}

TEST_CASE("A model with Dropout trains with fit and predicts deterministically", "[dropout][sequential]") {
  const Quadrants train = quadrants(256, 11), test = quadrants(128, 12);
  Sequential m = quadrant_model_around(Dropout(0.5f), 7);
  const Random::State before = m.layer(3).generator()->state();
  m.fit(train.x, train.y, {.epochs = 5, .batch_size = 32, .seed = 1, .verbose = 0});
  CHECK(m.layer(3).generator()->state() != before);  // fit ran it in training mode
  const Evaluation e = m.evaluate(test.x, test.y);
  INFO("test accuracy " << e.accuracy);
  CHECK(e.accuracy > 0.9);  // chance is 0.25
  const Tensor p = m.predict(test.x);
  CHECK(bitwise_equal(p, m.predict(test.x)));
  CHECK(bitwise_equal(p, m.forward(test.x, Mode::Inference)));
}

TEST_CASE("Dropout saves and loads with its rate, and a bad rate is refused", "[dropout][model_file]") {
  check_float_option(&Dropout::rate, 0.25f,
                     {-0.1f, 1.0f, 1.5f, std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity()},
                     "Dropout: rate must be in [0, 1)");
  // A tiny value is printed as itself (std::to_string printed "-0.000000").
  CHECK_THROWS_WITH(Dropout(-1e-10f), Catch::Contains("got -1.00000001e-10"));
}
