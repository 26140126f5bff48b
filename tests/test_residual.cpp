// Residual blocks: gradients through both paths, shapes checked at build,
// saving and loading with their sublayers, summaries, and training.

#include <catch2/catch.hpp>

#include "built_layer.hpp"
#include "gradient_check.hpp"
#include "loom/io/crc32.hpp"
#include "loom/io/model_file.hpp"
#include "loom/layers/conv2d.hpp"
#include "loom/layers/dense.hpp"
#include "loom/layers/flatten.hpp"
#include "loom/layers/relu.hpp"
#include "loom/layers/residual.hpp"
#include "loom/layers/softmax.hpp"
#include "loom/models/small_resnet.hpp"
#include "temp_dir.hpp"
#include "toy_model.hpp"

using namespace loom;
using Catch::Contains;

namespace {

Conv2D same_conv(Index filters, Index kernel = 3, Index strides = 1, Activation a = Activation::None) {
  return Conv2D({.filters = filters, .kernel = kernel, .strides = strides, .padding = Padding::Same, .activation = a});
}

// conv-ReLU-conv on the main path, identity shortcut, ReLU after the sum.
Residual identity_block(Index filters) {
  Residual b({.activation = Activation::ReLU});
  b.add(same_conv(filters, 3, 1, Activation::ReLU));
  b.add(same_conv(filters));
  return b;
}

// The main path halves the size and changes the channels; a strided 1x1 projects the shortcut.
Residual projection_block(Index filters) {
  Residual b({.activation = Activation::ReLU});
  b.add(same_conv(filters, 3, 2));
  b.add(ReLU());
  b.add(same_conv(filters));
  b.add_shortcut(same_conv(filters, 1, 2));
  return b;
}

Sequential residual_model(std::uint64_t seed) {
  Sequential m(Shape{8, 8, 1}, seed);
  m.add(same_conv(4, 3, 1, Activation::ReLU));
  m.add(identity_block(4));
  m.add(projection_block(6));
  m.add(Flatten());
  m.add(Dense({.units = 4, .activation = Activation::Softmax}));
  m.compile(Adam({.learning_rate = 0.01f}));
  return m;
}

}  // namespace

TEST_CASE("Residual blocks pass the gradient checker through both paths, in both modes", "[residual][gradient_check]") {
  SECTION("identity shortcut") {
    // Linear inside: a ReLU between two convolutions puts kinks wherever a
    // weight's step moves a pre-activation across 0 (ReLU's own derivative is
    // checked in the flat section below and in test_gradients.cpp).
    Residual b;
    b.add(same_conv(3));
    b.add(same_conv(3));
    REQUIRE_LAYER_GRADIENTS(b, Shape{5, 5, 3});
    REQUIRE_LAYER_GRADIENTS(b, Shape{5, 5, 3}, {.mode = Mode::Inference});
  }
  SECTION("projection shortcut with stride 2, no activation after the sum") {
    Residual b;
    b.add(same_conv(4, 3, 2));
    b.add_shortcut(same_conv(4, 1, 2));
    const testing::GradientReport r = testing::check_layer(b, Shape{6, 6, 2});
    INFO(r.describe());
    REQUIRE(r.ok());
    // dx, then the main path's kernel and bias, then the shortcut's: every sublayer is differentiated
    REQUIRE(r.tensors.size() == 5);
    CHECK(r.tensors[1].name == "conv2d/kernel");
  }
  SECTION("flat input through Dense layers") {
    Residual b({.activation = Activation::ReLU});
    b.add(Dense({.units = 5, .activation = Activation::ReLU}));
    b.add(Dense({.units = 7}));
    REQUIRE_LAYER_GRADIENTS(b, Shape{7});
  }
}

TEST_CASE("Residual computes act(main(x) + shortcut(x)), and infer matches forward", "[residual]") {
  Residual b({.activation = Activation::ReLU});
  b.add(Dense({.units = 3}));
  Random rng(1);
  b.build(Shape{3}, rng);
  // main path: the identity matrix and a bias of -1
  Param& k = b.children()[0]->params()[0];
  k.value.setZero();
  for (Index i = 0; i < 3; ++i) k.value[i * 3 + i] = 1.0f;
  b.children()[0]->params()[1].value.setConstant(-1.0f);
  Tensor x(1, 1, 1, 3);
  x.data()[0] = 2.0f;
  x.data()[1] = 0.25f;
  x.data()[2] = -3.0f;
  const Tensor& y = b.forward(x);  // (x - 1) + x, then ReLU
  CHECK(y.data()[0] == 3.0f);
  CHECK(y.data()[1] == 0.0f);   // -0.5 clipped
  CHECK(y.data()[2] == 0.0f);
  Tensor yi;
  b.infer(x, yi);
  CHECK(testing::bitwise_equal(y, yi));
}

TEST_CASE("Residual refuses bad blocks with clear errors", "[residual]") {
  Random rng(1);
  CHECK_THROWS_AS(Residual({.activation = Activation::Softmax}), UsageError);
  Residual empty;
  CHECK_THROWS_WITH(empty.build(Shape{4, 4, 2}, rng), Contains("main path is empty"));
  Residual changes_channels;
  changes_channels.add(same_conv(5));
  CHECK_THROWS_AS(changes_channels.build(Shape{4, 4, 2}, rng), ShapeError);
  CHECK_THROWS_WITH(changes_channels.build(Shape{4, 4, 2}, rng), Contains("4, 4, 5)") && Contains("add_shortcut"));
  Residual bad_softmax;
  CHECK_THROWS_AS(bad_softmax.add(Softmax()), UsageError);
  CHECK_THROWS_AS(bad_softmax.add(std::unique_ptr<Layer>()), UsageError);
  Residual built = identity_block(2);
  built.build(Shape{4, 4, 2}, rng);
  CHECK_THROWS_WITH(built.add(ReLU()), Contains("already in a model"));
}

TEST_CASE("A model of residual blocks trains, summarises, saves and loads bit for bit", "[residual][model_file]") {
  const testing::Quadrants d = testing::quadrants(96, 2);
  Sequential m = residual_model(3);
  const History h = m.fit(d.x, d.y, {.epochs = 4, .batch_size = 16, .verbose = 0});
  CHECK(h.epochs.back().accuracy > 0.5);  // 4 classes: chance is 0.25

  const std::string s = m.summary_string();
  CHECK_THAT(s, Contains("residual (Residual)"));
  CHECK_THAT(s, Contains("  conv2d_1 (Conv2D)"));   // sublayers indented, named across the model
  CHECK_THAT(s, Contains("residual_1 (Residual)"));
  CHECK_THAT(s, Contains("Total params: " ));
  CHECK(m.param_count() == m.trainable_param_count());

  const testing::TempDir dir;
  m.save(dir / "res.loom");
  Sequential back = load_model(dir / "res.loom");
  REQUIRE(back.size() == m.size());
  CHECK(back.layer(2).kind() == "Residual");
  CHECK(back.layer(2).children().size() == 4);
  CHECK(back.layer(2).children()[3]->name() == m.layer(2).children()[3]->name());
  CHECK(back.summary_string() == s);
  CHECK(testing::bitwise_equal(back.predict(d.x), m.predict(d.x)));
  // and training goes on from the same state
  m.fit(d.x, d.y, {.epochs = 1, .batch_size = 16, .shuffle = false, .verbose = 0});
  back.fit(d.x, d.y, {.epochs = 1, .batch_size = 16, .shuffle = false, .verbose = 0});
  CHECK(testing::same_params(m, back));
}

TEST_CASE("A model file whose residual block has an empty main path is refused", "[residual][model_file]") {
  std::vector<std::uint8_t> b = encode_model(residual_model(1));
  // ARCH holds "Residual", its name, then the activation byte and the main path's length
  const std::string kind = "Residual";
  const auto at = std::search(b.begin(), b.end(), kind.begin(), kind.end());
  REQUIRE(at != b.end());
  const std::size_t name_at = static_cast<std::size_t>(at - b.begin()) + kind.size();
  std::uint32_t name_length;
  std::memcpy(&name_length, b.data() + name_at, 4);
  const std::size_t main_at = name_at + 4 + name_length + 1;
  const std::uint32_t zero = 0;
  std::memcpy(b.data() + main_at, &zero, 4);
  const std::uint32_t c = crc32(std::span<const std::uint8_t>(b).first(b.size() - 4));
  std::memcpy(b.data() + b.size() - 4, &c, 4);
  CHECK_THROWS_AS(decode_model(b), DataError);
  CHECK_THROWS_WITH(decode_model(b), Contains("main path needs 1 to"));
}

TEST_CASE("small_resnet stacks the blocks asked for per stage and can start each branch at zero", "[residual][models]") {
  using models::small_resnet;
  const auto residuals = [](const Sequential& m) {
    std::vector<const Layer*> out;
    for (std::size_t i = 0; i < m.size(); ++i)
      if (m.layer(i).kind() == "Residual") out.push_back(&m.layer(i));
    return out;
  };
  const Sequential plain = small_resnet(3);
  const Sequential deep = small_resnet(3, {.blocks = {1, 2, 1}, .zero_init_residual = true});
  REQUIRE(residuals(plain).size() == 3);
  const auto blocks = residuals(deep);
  REQUIRE(blocks.size() == 4);
  CHECK(blocks[1]->output_shape() == (Shape{7, 7, 64}));
  CHECK(blocks[1]->children().size() == 7);  // strided: a projection shortcut (conv, BN)
  CHECK(blocks[2]->output_shape() == (Shape{7, 7, 64}));
  CHECK(blocks[2]->children().size() == 5);  // the stage's second block: identity shortcut
  for (const Layer* b : blocks) {
    // the branch's last BatchNormalization (the fifth sublayer) starts at gamma 0, the others at 1
    const auto& last_bn = dynamic_cast<const BatchNormalization&>(*b->children()[4]);
    CHECK(last_bn.gamma().isZero());
    CHECK((dynamic_cast<const BatchNormalization&>(*b->children()[1]).gamma().array() == 1.0f).all());
  }
  for (const Layer* b : residuals(plain))
    CHECK((dynamic_cast<const BatchNormalization&>(*b->children()[4]).gamma().array() == 1.0f).all());
  CHECK(deep.param_count() == plain.param_count() + 2 * (36928 + 256));

  CHECK_THROWS_WITH(small_resnet(3, {.blocks = {1, 0, 1}}), Contains("blocks of stage 2 must be positive, got 0"));

  // Without the stem's max pool, a strided first stage reaches the same 14x14.
  const Sequential strided = small_resnet(3, {.strides = {2, 2, 1}, .stem_pool = false});
  for (std::size_t i = 0; i < strided.size(); ++i) CHECK(strided.layer(i).kind() != "MaxPooling2D");
  CHECK(residuals(strided)[0]->output_shape() == (Shape{14, 14, 32}));
  CHECK(residuals(strided)[0]->children().size() == 7);  // a projection shortcut now
}

TEST_CASE("small_resnet's pooled shortcut averages windows before a 1x1 of stride 1, and saves and loads",
          "[residual][models][model_file]") {
  using models::small_resnet;
  const models::SmallResNetOptions strided{.filters = {8, 16, 32}, .strides = {2, 2, 2}, .stem_pool = false};
  models::SmallResNetOptions pooled_options = strided;
  pooled_options.pooled_shortcut = true;
  const Sequential plain = small_resnet(5, strided);
  Sequential pooled = small_resnet(5, pooled_options);
  pooled.compile(Adam());  // a model file records its optimizer
  CHECK(pooled.param_count() == plain.param_count());  // the same 1x1 kernels, the pool has no parameters
  for (std::size_t i : {3, 4, 5}) {                      // the three blocks, 28 -> 14 -> 7 -> 4
    const auto& path = pooled.layer(i).children();
    REQUIRE(path.size() == 8);  // conv, BN, ReLU, conv, BN | pool, conv, BN
    CHECK(path[5]->kind() == "AveragePooling2D");
    CHECK(path[6]->output_shape() == plain.layer(i).children()[5]->output_shape());
    CHECK(pooled.layer(i).output_shape() == plain.layer(i).output_shape());
  }
  CHECK(pooled.layer(5).output_shape() == (Shape{4, 4, 32}));  // 7x7 pooled with same padding: 4x4, as the main path

  Random rng(3);
  Tensor x(2, 28, 28, 1);
  for (Index i = 0; i < x.size(); ++i) x.data()[i] = rng.uniform(0.0f, 1.0f);
  const testing::TempDir dir;
  pooled.save(dir / "pooled.loom");
  const Sequential back = load_model(dir / "pooled.loom");
  CHECK(back.summary_string() == pooled.summary_string());
  CHECK(testing::bitwise_equal(back.predict(x), pooled.predict(x)));
  CHECK_FALSE(testing::bitwise_equal(plain.predict(x), pooled.predict(x)));  // another shortcut, another network
}

TEST_CASE("small_resnet's pool_downsample max-pools each strided stage, whose convolutions then run at stride 1",
          "[residual][models]") {
  using models::small_resnet;
  const models::SmallResNetOptions strided{.filters = {8, 16, 32}, .strides = {2, 2, 2}, .stem_pool = false};
  models::SmallResNetOptions pooled_options = strided;
  pooled_options.pool_downsample = true;
  const Sequential plain = small_resnet(5, strided);
  const Sequential pooled = small_resnet(5, pooled_options);
  // stem conv, BN, ReLU, then pool + block three times: 28 -> 14 -> 7 -> 4 (same padding), as the strided blocks
  REQUIRE(pooled.size() == plain.size() + 3);
  for (std::size_t stage = 0; stage < 3; ++stage) {
    const Layer& pool = pooled.layer(3 + 2 * stage);
    const Layer& block = pooled.layer(4 + 2 * stage);
    CHECK(pool.kind() == "MaxPooling2D");
    CHECK(block.output_shape() == plain.layer(3 + stage).output_shape());
    const auto& path = block.children();
    for (std::size_t c : {0, 3}) {
      const auto& conv = dynamic_cast<const Conv2D&>(*path[c]);
      CHECK(conv.options().strides == Size2(1));
      CHECK(conv.algorithm() == ConvAlgorithm::Winograd4);  // 3x3, stride 1, at least 8 channels
    }
    // the first block keeps 8 channels: an identity shortcut; the others project theirs, at stride 1
    CHECK(path.size() == (stage == 0 ? 5u : 7u));
  }
  CHECK(pooled.layer(8).output_shape() == (Shape{4, 4, 32}));
  // A stage of stride 1 gets no pool.
  pooled_options.strides = {2, 1, 2};
  const Sequential two = small_resnet(5, pooled_options);
  CHECK(two.size() == plain.size() + 2);
  CHECK(two.output_shape() == small_resnet(5, {.filters = {8, 16, 32}, .strides = {2, 1, 2}, .stem_pool = false})
                                  .output_shape());
}

TEST_CASE("backward_into assigns or adds a layer's dx: the default for any layer, and whole paths", "[residual]") {
  // The default (Layer::backward_into) on a layer that only has backward.
  Dense dense = loom::testing::built(Dense({.units = 3}), Shape{5});
  Random rng(4);
  const Tensor x = loom::testing::random_tensor(2, 1, 1, 5, rng), dy = loom::testing::random_tensor(2, 1, 1, 3, rng);
  dense.forward(x);
  const Tensor expected = dense.backward(dy);
  Tensor dx = loom::testing::random_tensor(2, 1, 1, 5, rng);
  dense.backward_into(dy, dx, GradientWrite::Assign);
  CHECK(loom::testing::bitwise_equal(dx, expected));
  const Tensor before = dx;
  dense.backward_into(dy, dx, GradientWrite::Add);
  for (Index i = 0; i < dx.size(); ++i) CHECK(dx.data()[i] == before.data()[i] + expected.data()[i]);
  Tensor wrong = loom::testing::random_tensor(3, 1, 1, 5, rng);
  CHECK_THROWS_AS(dense.backward_into(dy, wrong, GradientWrite::Add), ShapeError);

  // A block's dx is its paths' dx summed, to the bit: the shortcut's strided
  // 1x1 convolution adds onto the main path's dx where the two paths'
  // own dx, run apart, are summed here.
  Residual block = projection_block(6);
  Random build_rng(5);
  block.build(Shape{8, 8, 4}, build_rng);
  const Tensor bx = loom::testing::random_tensor(3, 8, 8, 4, rng);
  const Tensor& by = block.forward(bx);
  const Tensor bdy = loom::testing::random_tensor(3, by.dimension(1), by.dimension(2), by.dimension(3), rng);
  const Tensor bdx = block.backward(bdy);
  // Apart: the sum's ReLU mask, then each path's backward on its own.
  Tensor dz;
  activate_backward(Activation::ReLU, block.forward(bx), bdy, dz);
  const auto main = block.children().subspan(0, 3), shortcut = block.children().subspan(3);
  const Tensor d_main = chain::backward(main, dz);
  const Tensor d_shortcut = chain::backward(shortcut, dz);
  REQUIRE(bdx.dimensions() == bx.dimensions());
  for (Index i = 0; i < bdx.size(); ++i) CHECK(bdx.data()[i] == d_main.data()[i] + d_shortcut.data()[i]);
}

TEST_CASE("add_tensors, the sum of a block's paths, refuses tensors that differ and activations it cannot apply",
          "[residual]") {
  Random rng(6);
  const Tensor a = loom::testing::random_tensor(2, 3, 3, 4, rng), b = loom::testing::random_tensor(2, 3, 3, 4, rng);
  const Tensor other = loom::testing::random_tensor(2, 3, 3, 5, rng);
  Tensor out;
  add_tensors(a, b, out, Activation::ReLU);
  for (Index i = 0; i < out.size(); ++i) CHECK(out.data()[i] == std::max(a.data()[i] + b.data()[i], 0.0f));
  CHECK_THROWS_AS(add_tensors(a, other, out), ShapeError);
  CHECK_THROWS_WITH(add_tensors(a, b, out, Activation::Softmax), Contains("must be none or relu"));
}
