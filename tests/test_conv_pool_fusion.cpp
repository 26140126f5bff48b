// A first-layer Conv2D with ReLU and the 2x2 MaxPool2D after it train as one
// pass (chain::fuse_max_pools, DirectConv::forward_pooled/backward_pooled):
// the pooled map (forward and inference) and the kernel and bias gradients
// must be those of the two layers run apart, bit for bit, on every shape
// class the fused kernels cut differently, and the pair must fall back to
// the layers apart whenever the convolution does not use the direct algorithm.
#include <catch2/catch.hpp>

#include <memory>
#include <vector>

#include "loom/layers/conv2d.hpp"
#include "loom/layers/layer_chain.hpp"
#include "loom/layers/maxpool2d.hpp"
#include "loom/sequential.hpp"
#include "loom/testing/gradient_check.hpp"

using namespace loom;
using loom::testing::random_tensor;

namespace conv_pool_fusion {  // named: the tests build as one unity source

struct PairCase {
  const char* what;
  Conv2DOptions o;
  Shape in;
  float bias = 0.0f;  // every filter's bias: negative makes whole windows rectified to 0 (ties)
};

std::unique_ptr<Conv2D> first_layer(const PairCase& c) {
  auto conv = std::make_unique<Conv2D>(c.o);
  Random rng(3);
  conv->build(c.in, rng);
  conv->set_needs_input_gradient(false);  // a first layer: the rule picks the direct algorithm
  conv->params()[1].value.setConstant(c.bias);
  return conv;
}

// Trains the pair one step fused and the same layers apart; returns whether the fused forward pooled.
bool check_fused_against_apart(const PairCase& c) {
  INFO(c.what << ": filters " << c.o.filters << ", kernel " << c.o.kernel.to_string() << " on " << c.in.to_string());
  std::unique_ptr<Conv2D> conv = first_layer(c);
  MaxPool2D pool({.pool = 2});
  Random rng(1);
  pool.build(conv->output_shape(), rng);
  const Tensor x = random_tensor(5, c.in, 7);
  const Tensor y = pool.forward(conv->forward(x));
  const Tensor dy = random_tensor(5, pool.output_shape(), 8);
  conv->backward(pool.backward(dy));

  std::vector<std::unique_ptr<Layer>> pair;
  pair.push_back(first_layer(c));
  pair.push_back(std::make_unique<MaxPool2D>(MaxPool2DOptions{.pool = 2}));
  pair[1]->build(pair[0]->output_shape(), rng);
  chain::fuse(pair);
  const auto& fused_pool = dynamic_cast<const MaxPool2D&>(*pair[1]);
  const Tensor y_fused = chain::forward(pair, x);
  chain::backward(pair, dy);

  CHECK(testing::bitwise_equal(y_fused, y));
  for (int p = 0; p < 2; ++p) {
    INFO("gradient of " << conv->params()[p].name);
    CHECK(pair[0]->params()[p].grad == conv->params()[p].grad);
  }
  Tensor y_infer;
  chain::infer(pair, x, y_infer);  // fused too, where the forward pooled: Conv2D::infer_pooled
  CHECK(testing::bitwise_equal(y_infer, y));
  return fused_pool.input_may_be_pooled() && fused_pool.last_input_came_pooled();
}

}  // namespace conv_pool_fusion

using conv_pool_fusion::PairCase;
using conv_pool_fusion::check_fused_against_apart;

TEST_CASE("A first-layer Conv2D with ReLU pools for the MaxPool2D after it, with the bits of the layers apart",
          "[conv][fusion]") {
  const std::vector<PairCase> cases = {
      {"the seed model's conv1", {.filters = 32, .kernel = 3, .activation = Activation::ReLU}, Shape{28, 28, 1}},
      {"the seed model's conv1, most windows rectified to 0: ties",
       {.filters = 32, .kernel = 3, .activation = Activation::ReLU}, Shape{12, 12, 1}, -0.6f},
      {"an odd map: the last row and column under no window",
       {.filters = 16, .kernel = 3, .activation = Activation::ReLU}, Shape{27, 27, 1}},
      {"the photo model's conv1: 5x5 stride 2 on colour (the portable mask)",
       {.filters = 32, .kernel = 5, .strides = 2, .padding = Padding::Same, .activation = Activation::ReLU},
       Shape{19, 20, 3}},
      {"24 filters on colour, odd in both directions: a partial vector",
       {.filters = 24, .kernel = 3, .padding = Padding::Same, .activation = Activation::ReLU}, Shape{9, 11, 3}},
      {"48 filters: a block of 32 and one of 16",
       {.filters = 48, .kernel = 3, .padding = Padding::Same, .activation = Activation::ReLU}, Shape{8, 10, 2}},
  };
  for (const PairCase& c : cases) CHECK(check_fused_against_apart(c) == maxpool_halves::pool_halves_supported);
}

TEST_CASE("The pair runs apart when the convolution is not direct, and only a ReLU convolution takes a pool",
          "[conv][fusion]") {
  PairCase forced = {"im2col forced", {.filters = 16, .kernel = 3, .activation = Activation::ReLU,
                                    .algorithm = ConvAlgorithm::Im2col}, Shape{10, 10, 1}};
  CHECK_FALSE(check_fused_against_apart(forced));

  Conv2D linear({.filters = 8, .kernel = 3});
  Random rng(1);
  linear.build(Shape{8, 8, 1}, rng);
  MaxPool2D pool({.pool = 2});
  pool.build(linear.output_shape(), rng);
  CHECK_FALSE(linear.take_following_max_pool(pool));

  Conv2D relu({.filters = 8, .kernel = 3, .activation = Activation::ReLU});
  relu.build(Shape{8, 8, 1}, rng);
  MaxPool2D three({.pool = 3});  // not 2x2 windows
  three.build(relu.output_shape(), rng);
  CHECK_FALSE(relu.take_following_max_pool(three));

  Tensor x(1, 8, 8, 1), y;
  x.setZero();
  CHECK_THROWS_WITH(relu.infer_pooled(x, y), Catch::Matchers::Contains("infer_pooled needs a layer that pools"));
  CHECK_THROWS_AS(linear.infer_pooled(x, y), UsageError);
}

TEST_CASE("A Sequential fuses the seed model's first convolution and pool, and not its second", "[conv][fusion]") {
  Sequential m(Shape{28, 28, 1});
  m.add(Conv2D({.filters = 32, .kernel = 3, .activation = Activation::ReLU}));
  m.add(MaxPool2D({.pool = 2}));
  m.add(Conv2D({.filters = 64, .kernel = 3, .activation = Activation::ReLU}));
  m.add(MaxPool2D({.pool = 2}));
  CHECK(dynamic_cast<const MaxPool2D&>(m.layer(1)).input_may_be_pooled() == maxpool_halves::pool_halves_supported);
  CHECK_FALSE(dynamic_cast<const MaxPool2D&>(m.layer(3)).input_may_be_pooled());  // 3x3 on 32 channels: not direct
}
