// A Conv2D with ReLU and the 2x2 MaxPool2D after it train as one pass
// (chain::fuse_max_pools) when the convolution's algorithm can pool: the
// direct one (a first layer: DirectConv::forward_pooled/backward_pooled) and
// Winograd's (its output stage pools each tile, its backward routes the
// pooled gradient while it reads it). The pooled map (forward and
// inference), the kernel and bias gradients and the input gradient (assigned
// and added) must be those of the two layers run apart, bit for bit, on
// every shape class the fused kernels cut differently, and the pair must fall
// back to the layers apart whenever the algorithm cannot pool.
#include <catch2/catch.hpp>

#include <algorithm>
#include <memory>
#include <vector>

#include "loom/layers/batch_normalization.hpp"
#include "loom/layers/conv2d.hpp"
#include "loom/layers/layer_chain.hpp"
#include "loom/layers/maxpool2d.hpp"
#include "loom/layers/relu.hpp"
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
  bool input_gradient = false;  // false: a first layer, for which the rule picks the direct algorithm
};

std::unique_ptr<Conv2D> make_conv(const PairCase& c) {
  auto conv = std::make_unique<Conv2D>(c.o);
  Random rng(3);
  conv->build(c.in, rng);
  conv->set_needs_input_gradient(c.input_gradient);
  conv->params()[1].value.setConstant(c.bias);
  return conv;
}

// Trains the pair fused and the same layers apart, at two batch sizes, and
// checks every result bitwise; returns whether the fused forward pooled.
bool check_fused_against_apart(const PairCase& c) {
  INFO(c.what << ": filters " << c.o.filters << ", kernel " << c.o.kernel.to_string() << " on " << c.in.to_string());
  std::unique_ptr<Conv2D> conv = make_conv(c);
  MaxPool2D pool({.pool = 2});
  Random rng(1);
  pool.build(conv->output_shape(), rng);

  std::vector<std::unique_ptr<Layer>> pair;
  pair.push_back(make_conv(c));
  pair.push_back(std::make_unique<MaxPool2D>(MaxPool2DOptions{.pool = 2}));
  pair[1]->build(pair[0]->output_shape(), rng);
  chain::fuse(pair);
  const auto& fused_pool = dynamic_cast<const MaxPool2D&>(*pair[1]);

  bool pooled = true;
  for (const Index n : {5, 3}) {  // a second, smaller batch: nothing kept from the first may leak into it
    INFO("batch " << n);
    const Tensor x = random_tensor(n, c.in, 7 + n);
    const Tensor y = pool.forward(conv->forward(x));
    const Tensor dy = random_tensor(n, pool.output_shape(), 8 + n);
    const Tensor& dpool = pool.backward(dy);
    const Tensor dx = conv->backward(dpool);

    const Tensor y_fused = chain::forward(pair, x);
    const Tensor dx_fused = chain::backward(pair, dy);
    pooled = pooled && fused_pool.input_may_be_pooled() && fused_pool.last_input_came_pooled();

    CHECK(testing::bitwise_equal(y_fused, y));
    for (int p = 0; p < 2; ++p) {
      INFO("gradient of " << conv->params()[p].name);
      CHECK(pair[0]->params()[p].grad == conv->params()[p].grad);
    }
    if (c.input_gradient) {
      CHECK(testing::bitwise_equal(dx_fused, dx));
      // backward_into, as the first layer of a residual path takes it: added onto what is there.
      Tensor into = random_tensor(n, c.in, 11), into_fused = into;
      conv->backward_into(dpool, into, GradientWrite::Add);
      chain::backward_into(pair, dy, into_fused, GradientWrite::Add);
      CHECK(testing::bitwise_equal(into_fused, into));
    }
    Tensor y_infer;
    chain::infer(pair, x, y_infer);  // fused too, where the forward pooled: Conv2D::infer_pooled
    CHECK(testing::bitwise_equal(y_infer, y));
  }
  return pooled;
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

TEST_CASE("A Winograd Conv2D with ReLU pools for the MaxPool2D after it in its output stage, with the bits of the "
          "layers apart", "[conv][fusion][winograd]") {
  for (const ConvAlgorithm a : {ConvAlgorithm::Winograd4, ConvAlgorithm::Winograd2}) {
    INFO("algorithm " << to_string(a));
    const std::vector<PairCase> cases = {
        {"the seed model's conv2: valid, an odd map (the last row and column under no window)",
         {.filters = 64, .kernel = 3, .activation = Activation::ReLU, .algorithm = a}, Shape{13, 13, 32}, 0.0f, true},
        {"the vgg model's conv2: same padding, even map",
         {.filters = 32, .kernel = 3, .padding = Padding::Same, .activation = Activation::ReLU, .algorithm = a},
         Shape{8, 8, 32}, 0.0f, true},
        {"40 filters on 24 channels, odd in one direction: partial vectors",
         {.filters = 40, .kernel = 3, .padding = Padding::Same, .activation = Activation::ReLU, .algorithm = a},
         Shape{10, 7, 24}, 0.0f, true},
        {"most windows rectified to 0: ties",
         {.filters = 16, .kernel = 3, .padding = Padding::Same, .activation = Activation::ReLU, .algorithm = a},
         Shape{6, 6, 3}, -0.8f, true},
        {"a map of 2x2, one window",
         {.filters = 16, .kernel = 3, .activation = Activation::ReLU, .algorithm = a}, Shape{4, 4, 5}, 0.0f, true},
        {"a kernel too large for the fused backward (stage by stage, the input tiles kept)",
         {.filters = 176, .kernel = 3, .padding = Padding::Same, .activation = Activation::ReLU, .algorithm = a},
         Shape{6, 5, 176}, 0.0f, true},
        {"a first layer forced to Winograd: no input gradient",
         {.filters = 16, .kernel = 3, .padding = Padding::Same, .activation = Activation::ReLU, .algorithm = a},
         Shape{9, 9, 1}},
    };
    for (const PairCase& c : cases) CHECK(check_fused_against_apart(c) == maxpool_halves::pool_halves_supported);
  }
}

TEST_CASE("The pair runs apart when the convolution's algorithm cannot pool, and only a ReLU convolution takes a pool",
          "[conv][fusion]") {
  PairCase forced = {"im2col forced", {.filters = 16, .kernel = 3, .activation = Activation::ReLU,
                                    .algorithm = ConvAlgorithm::Im2col}, Shape{10, 10, 1}};
  CHECK_FALSE(check_fused_against_apart(forced));
  PairCase strided = {"a stride-2 layer with an input gradient: im2col by the rule",
                      {.filters = 16, .kernel = 3, .strides = 2, .padding = Padding::Same,
                       .activation = Activation::ReLU}, Shape{12, 12, 8}, 0.0f, true};
  CHECK_FALSE(check_fused_against_apart(strided));

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

TEST_CASE("A Sequential fuses both of the seed model's convolutions with their pools", "[conv][fusion]") {
  Sequential m(Shape{28, 28, 1});
  m.add(Conv2D({.filters = 32, .kernel = 3, .activation = Activation::ReLU}));
  m.add(MaxPool2D({.pool = 2}));
  m.add(Conv2D({.filters = 64, .kernel = 3, .activation = Activation::ReLU}));
  m.add(MaxPool2D({.pool = 2}));
  CHECK(dynamic_cast<const MaxPool2D&>(m.layer(1)).input_may_be_pooled() == maxpool_halves::pool_halves_supported);
  CHECK(dynamic_cast<const MaxPool2D&>(m.layer(3)).input_may_be_pooled() == maxpool_halves::pool_halves_supported);
  CHECK(dynamic_cast<const Conv2D&>(m.layer(2)).algorithm() == ConvAlgorithm::Winograd4);
}

TEST_CASE("Inference runs a block conv - batch normalization - ReLU - max pool as one step, with the bits of the "
          "layers apart", "[conv][fusion][batch_norm]") {
  struct Case {
    ConvAlgorithm algorithm;
    Index channels, filters;
    Shape in;
    bool pools;  // whether the convolution's algorithm pools: one step of 4 layers
  };
  const bool halves = maxpool_halves::pool_halves_supported;
  const Case c = GENERATE_COPY(Case{ConvAlgorithm::Direct, 1, 24, Shape{9, 11, 1}, halves},
                               Case{ConvAlgorithm::Winograd4, 8, 40, Shape{9, 7, 8}, halves},
                               Case{ConvAlgorithm::Winograd2, 16, 16, Shape{8, 8, 16}, halves},
                               Case{ConvAlgorithm::Im2col, 8, 16, Shape{8, 8, 8}, false});
  CAPTURE(to_string(c.algorithm), c.channels, c.filters);
  Random rng(5);
  std::vector<std::unique_ptr<Layer>> block;
  block.push_back(std::make_unique<Conv2D>(
      Conv2DOptions{.filters = c.filters, .kernel = 3, .padding = Padding::Same, .algorithm = c.algorithm}));
  block.push_back(std::make_unique<BatchNormalization>());
  block.push_back(std::make_unique<ReLU>());
  block.push_back(std::make_unique<MaxPool2D>(MaxPool2DOptions{.pool = 2}));
  chain::build(block, c.in, rng);
  auto& conv = dynamic_cast<Conv2D&>(*block[0]);
  if (c.algorithm == ConvAlgorithm::Direct) conv.set_needs_input_gradient(false);
  REQUIRE(conv.algorithm() == c.algorithm);
  conv.params()[1].value.setRandom();
  auto& bn = *block[1];
  for (Index ch = 0; ch < c.filters; ++ch) {  // a map that moves every channel differently, some below 0
    const float t = static_cast<float>(ch) / static_cast<float>(c.filters);
    bn.params()[0].value[ch] = 0.5f + 1.5f * t;   // gamma
    bn.params()[1].value[ch] = -0.3f + 0.8f * t;  // beta
    bn.params()[2].value[ch] = 0.2f - 0.5f * t;   // moving mean
    bn.params()[3].value[ch] = 0.4f + 2.0f * t;   // moving variance
  }
  CHECK(chain::step_size(block, 0, block.size()) == (c.pools ? 4u : 3u));

  const Tensor x = random_tensor(3, c.in, 9);
  Tensor z, normalized, rectified, expected, got;
  static_cast<const Layer&>(*block[0]).infer(x, z);
  static_cast<const Layer&>(*block[1]).infer(z, normalized);
  static_cast<const Layer&>(*block[2]).infer(normalized, rectified);
  static_cast<const Layer&>(*block[3]).infer(rectified, expected);
  chain::infer(block, x, got);
  CHECK(testing::bitwise_equal(got, expected));
  CHECK(std::any_of(got.data(), got.data() + got.size(), [](float v) { return v > 0.0f; }));
}

TEST_CASE("infer_normalized_pooled refuses a convolution with an activation or one whose algorithm cannot pool",
          "[conv][fusion][batch_norm]") {
  Random rng(1);
  Conv2D relu({.filters = 4, .kernel = 3, .activation = Activation::ReLU});
  relu.build(Shape{6, 6, 2}, rng);
  Conv2D im2col({.filters = 4, .kernel = 3, .algorithm = ConvAlgorithm::Im2col});
  im2col.build(Shape{6, 6, 2}, rng);
  const float one[4] = {1, 1, 1, 1}, zero[4] = {0, 0, 0, 0};
  const ChannelNormalization map{zero, one, one, zero};
  Tensor x(1, 6, 6, 2), y;
  x.setZero();
  CHECK_THROWS_WITH(relu.infer_normalized_pooled(x, y, map), Catch::Matchers::Contains("without activation"));
  CHECK_THROWS_WITH(im2col.infer_normalized_pooled(x, y, map), Catch::Matchers::Contains("algorithm pools"));
}

TEST_CASE("The Winograd engine's pooled passes refuse a layer they cannot pool and a dy of the full map",
          "[conv][fusion][winograd]") {
  const std::vector<float> kernel(9 * 4 * 8, 0.1f), bias(8, 0.0f);
  std::vector<float> dkernel(9 * 4 * 8), dbias(8);
  conv::WinogradConv<4> engine;
  Tensor pooled;
  // A 1x1 map: no 2x2 window.
  const conv::ConvGeometry tiny{.h = 1, .w = 1, .c = 4, .kh = 3, .kw = 3, .f = 8, .pad_top = 1, .pad_left = 1,
                                .oh = 1, .ow = 1};
  const Tensor one = random_tensor(1, Shape{1, 1, 4}, 3);
  CHECK_THROWS_WITH(engine.forward_pooled(tiny, {kernel.data(), bias.data()}, one, pooled),
                    Catch::Matchers::Contains("cannot be pooled"));
  CHECK_THROWS_WITH(engine.infer_pooled(tiny, {kernel.data(), bias.data()}, one, pooled),
                    Catch::Matchers::Contains("cannot be pooled"));
  if (!maxpool_halves::pool_halves_supported) return;
  // After a pooled forward, backward takes the pooled map's gradient, not the full map's.
  const conv::ConvGeometry g{.h = 6, .w = 6, .c = 4, .kh = 3, .kw = 3, .f = 8, .pad_top = 1, .pad_left = 1, .oh = 6,
                             .ow = 6};
  const Tensor x = random_tensor(2, Shape{6, 6, 4}, 4);
  engine.forward_pooled(g, {kernel.data(), bias.data()}, x, pooled);
  CHECK(pooled.dimension(1) == 3);
  const Tensor full = random_tensor(2, Shape{6, 6, 8}, 5);
  CHECK_THROWS_WITH(engine.backward(g, full, nullptr, dkernel.data(), dbias.data(), nullptr, GradientWrite::Assign),
                    Catch::Matchers::Contains("pooled output"));
}
