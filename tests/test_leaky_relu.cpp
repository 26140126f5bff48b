// LeakyReLU: its values and gradients, the slope at 0, and its alpha in model files.

#include <catch2/catch.hpp>

#include <limits>
#include <vector>

#include "gradient_check.hpp"
#include "layer_option_file.hpp"
#include "loom/layers/leaky_relu.hpp"

using namespace loom;
using namespace loom::testing;

TEST_CASE("LeakyReLU's backward matches finite differences", "[leaky_relu][gradient_check]") {
  for (const float alpha : {0.3f, 0.0f, 0.01f, 1.5f}) {
    INFO("alpha " << alpha);
    LeakyReLU layer(alpha);
    REQUIRE_LAYER_GRADIENTS(layer, Shape{4, 4, 3});
    REQUIRE_LAYER_GRADIENTS(layer, Shape{4, 4, 3}, {.mode = Mode::Inference});
  }
}

TEST_CASE("LeakyReLU is x above 0 and alpha x elsewhere, with slope alpha at 0", "[leaky_relu]") {
  CHECK(LeakyReLU().alpha() == 0.3f);  // Keras's default
  LeakyReLU layer(0.25f);
  Random rng(1);
  layer.build(Shape{5}, rng);
  Tensor x(1, 1, 1, 5);
  x.setValues({{{{-2.0f, -0.5f, 0.0f, 0.5f, 3.0f}}}});
  const Tensor& y = layer.forward(x);
  const std::vector<float> want = {-0.5f, -0.125f, 0.0f, 0.5f, 3.0f};
  for (Index i = 0; i < 5; ++i) CHECK(y.data()[i] == want[static_cast<std::size_t>(i)]);
  Tensor dy(1, 1, 1, 5);
  dy.setValues({{{{4.0f, 4.0f, 4.0f, 4.0f, 4.0f}}}});
  const Tensor& dx = layer.backward(dy);
  const std::vector<float> slope = {1.0f, 1.0f, 1.0f, 4.0f, 4.0f};  // 0.25 * 4 up to 0, included
  for (Index i = 0; i < 5; ++i) CHECK(dx.data()[i] == slope[static_cast<std::size_t>(i)]);
  CHECK_THROWS_AS(layer.backward(Tensor(2, 1, 1, 5)), ShapeError);
}

// Many blocks of for_blocks, against the definition one element at a time.
TEST_CASE("LeakyReLU's blocks give what the definition gives, element by element", "[leaky_relu]") {
  LeakyReLU layer(0.1f);
  Random rng(2);
  layer.build(Shape{16, 16, 8}, rng);
  const Tensor x = random_tensor(40, 16, 16, 8, rng);
  const Tensor dy = random_tensor(40, 16, 16, 8, rng);
  const Tensor& y = layer.forward(x);
  const Tensor& dx = layer.backward(dy);
  Index wrong = 0;
  for (Index i = 0; i < x.size(); ++i) {
    const float v = x.data()[i], g = dy.data()[i];
    if (y.data()[i] != (v > 0.0f ? v : 0.1f * v) || dx.data()[i] != (v > 0.0f ? g : 0.1f * g)) ++wrong;
  }
  CHECK(wrong == 0);
}

TEST_CASE("LeakyReLU saves and loads with its alpha, and a bad alpha is refused", "[leaky_relu][model_file]") {
  check_float_option(&LeakyReLU::alpha, 0.2f,
                     {-0.1f, -0.0001f, std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity()},
                     "LeakyReLU: alpha (the slope for inputs below 0) must be finite and not negative");
  // A tiny value is printed as itself (std::to_string printed "-0.000000").
  CHECK_THROWS_WITH(LeakyReLU(-1e-10f), Catch::Contains("got -1.00000001e-10"));
}
