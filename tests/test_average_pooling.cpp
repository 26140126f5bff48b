// AveragePooling2D and GlobalAveragePooling2D: gradients against finite
// differences (and MaxPool2D's with same padding, as it shares the window
// walk), hand-worked outputs as TensorFlow gives them, shapes, thread-count
// independence, option and shape errors, and saving and loading a trained model.

#include <catch2/catch.hpp>

#include <array>
#include <cmath>
#include <cstring>
#include <numeric>
#include <vector>

#include "built_layer.hpp"
#include "gradient_check.hpp"
#include "loom/io/model_file.hpp"
#include "loom/layers/average_pooling2d.hpp"
#include "loom/layers/conv2d.hpp"
#include "loom/layers/dense.hpp"
#include "loom/layers/global_average_pooling2d.hpp"
#include "loom/layers/maxpool2d.hpp"
#include "loom/optimizers/adam.hpp"
#include "loom/sequential.hpp"
#include "loom/threads.hpp"
#include "temp_dir.hpp"
#include "toy_model.hpp"

using namespace loom;
using loom::testing::built;
using Catch::Contains;
using loom::testing::GradientCheckOptions;
using loom::testing::InputKind;

namespace {


// A tensor of dimensions d holding v in row-major order.
Tensor tensor_of(const std::array<Index, 4>& d, const std::vector<float>& v) {
  Tensor t(d[0], d[1], d[2], d[3]);
  REQUIRE(static_cast<Index>(v.size()) == t.size());
  std::copy(v.begin(), v.end(), t.data());
  return t;
}

// start, start + 1, ...: count values.
std::vector<float> counting(Index count, float start = 0.0f) {
  std::vector<float> v(static_cast<std::size_t>(count));
  std::iota(v.begin(), v.end(), start);
  return v;
}

std::vector<float> values(const Tensor& t) { return {t.data(), t.data() + t.size()}; }

}  // namespace

// ---- gradients ---------------------------------------------------------------

TEST_CASE("AveragePooling2D gradients, valid and same padding", "[pooling][gradient]") {
  const struct {
    AveragePooling2DOptions options;
    Shape input, output;
  } cases[] = {
      {{.pool = 2}, Shape{4, 4, 3}, Shape{2, 2, 3}},                  // windows tile the input
      {{.pool = 2}, Shape{5, 5, 2}, Shape{2, 2, 2}},                  // the last row and column dropped
      {{.pool = 3}, Shape{7, 6, 2}, Shape{2, 2, 2}},                  // 3x3, strides 3
      {{.pool = 3, .strides = 1}, Shape{5, 5, 2}, Shape{3, 3, 2}},    // overlapping windows
      {{.pool = 3, .strides = 2}, Shape{7, 7, 1}, Shape{3, 3, 1}},    // pool != stride
      {{.pool = 2, .strides = 3}, Shape{7, 8, 2}, Shape{2, 3, 2}},    // stride past the pool: inputs left out
      {{.pool = {2, 3}, .strides = {1, 2}}, Shape{4, 7, 2}, Shape{3, 3, 2}},
      // same padding on odd sizes, so that border windows hold fewer positions
      {{.pool = 2, .padding = Padding::Same}, Shape{5, 5, 2}, Shape{3, 3, 2}},                 // pads after
      {{.pool = 3, .strides = 1, .padding = Padding::Same}, Shape{5, 3, 3}, Shape{5, 3, 3}},   // pads both sides
      {{.pool = 3, .strides = 2, .padding = Padding::Same}, Shape{7, 5, 1}, Shape{4, 3, 1}},
      {{.pool = 3, .padding = Padding::Same}, Shape{7, 5, 2}, Shape{3, 2, 2}},
      {{.pool = {2, 3}, .strides = {1, 2}, .padding = Padding::Same}, Shape{5, 7, 2}, Shape{5, 4, 2}},
  };
  for (const auto& c : cases) {
    INFO("pool " << c.options.pool.to_string() << " strides " << c.options.strides.to_string() << " padding "
                 << to_string(c.options.padding) << " on " << c.input.to_string());
    AveragePooling2D pool = built(AveragePooling2D(c.options), c.input);
    REQUIRE(pool.output_shape() == c.output);
    REQUIRE_LAYER_GRADIENTS(pool, c.input, GradientCheckOptions{.batch = 3});
  }
}

TEST_CASE("GlobalAveragePooling2D gradients", "[pooling][gradient]") {
  for (const Shape& input : {Shape{3, 5, 4}, Shape{1, 1, 3}, Shape{7, 7, 17}}) {
    INFO(input.to_string());
    GlobalAveragePooling2D pool;
    REQUIRE_LAYER_GRADIENTS(pool, input, GradientCheckOptions{.batch = 3});
  }
}

TEST_CASE("MaxPool2D gradients with same padding, on distinct values", "[pooling][gradient]") {
  const struct {
    MaxPool2DOptions options;
    Shape input;
  } cases[] = {
      {{.pool = 2, .padding = Padding::Same}, Shape{5, 5, 2}},
      {{.pool = 3, .strides = 1, .padding = Padding::Same}, Shape{5, 4, 2}},
      {{.pool = 3, .strides = 2, .padding = Padding::Same}, Shape{7, 5, 3}},
      {{.pool = {2, 3}, .strides = {2, 1}, .padding = Padding::Same}, Shape{5, 5, 1}},
  };
  for (const auto& c : cases) {
    INFO("pool " << c.options.pool.to_string() << " strides " << c.options.strides.to_string() << " on "
                 << c.input.to_string());
    MaxPool2D pool(c.options);
    REQUIRE_LAYER_GRADIENTS(pool, c.input, GradientCheckOptions{.batch = 3, .input = InputKind::Distinct});
  }
}

// ---- hand-worked values ---------------------------------------------------------

TEST_CASE("AveragePooling2D averages each window and shares the gradient equally", "[pooling]") {
  AveragePooling2D pool = built(AveragePooling2D(), Shape{4, 4, 1});
  const Tensor& y = pool.forward(tensor_of({1, 4, 4, 1}, counting(16)));
  REQUIRE(y.dimensions() == Tensor::Dimensions(1, 2, 2, 1));
  // (0 + 1 + 4 + 5) / 4, (2 + 3 + 6 + 7) / 4, ...
  CHECK(values(y) == std::vector<float>{2.5f, 4.5f, 10.5f, 12.5f});
  const Tensor& dx = pool.backward(tensor_of({1, 2, 2, 1}, {4, 8, -12, 2}));
  CHECK(values(dx) == std::vector<float>{1, 1, 2, 2,      //
                                         1, 1, 2, 2,      //
                                         -3, -3, 0.5f, 0.5f,  //
                                         -3, -3, 0.5f, 0.5f});
}

TEST_CASE("AveragePooling2D works channel by channel", "[pooling]") {
  AveragePooling2D pool = built(AveragePooling2D(), Shape{2, 2, 2});
  // channel 0: 1 9 3 4, mean 17 / 4; channel 1: 8 2 7 6, mean 23 / 4
  CHECK(values(pool.forward(tensor_of({1, 2, 2, 2}, {1, 8, 9, 2, 3, 7, 4, 6}))) == std::vector<float>{4.25f, 5.75f});
  CHECK(values(pool.backward(tensor_of({1, 1, 1, 2}, {4, -8}))) ==
        std::vector<float>{1, -2, 1, -2, 1, -2, 1, -2});
}

TEST_CASE("AveragePooling2D same padding averages only the positions inside the input", "[pooling]") {
  // x = 1 2 3 / 4 5 6 / 7 8 9. tf.nn.avg_pool2d(x, 2, 2, "SAME") pads one row
  // and column after: the windows hold 4, 2, 2 and 1 positions.
  AveragePooling2D pool = built(AveragePooling2D({.pool = 2, .padding = Padding::Same}), Shape{3, 3, 1});
  REQUIRE(pool.output_shape() == Shape{2, 2, 1});
  const Tensor x = tensor_of({1, 3, 3, 1}, counting(9, 1.0f));
  CHECK(values(pool.forward(x)) == std::vector<float>{(1 + 2 + 4 + 5) / 4.0f, (3 + 6) / 2.0f,  //
                                                      (7 + 8) / 2.0f, 9 / 1.0f});
  // Counting the padding (PyTorch's default) would give 3, 2.25, 3.75, 2.25.
  const Tensor& dx = pool.backward(tensor_of({1, 2, 2, 1}, {4, 2, 6, 5}));
  CHECK(values(dx) == std::vector<float>{1, 1, 1,  //
                                         1, 1, 1,  //
                                         3, 3, 5});
}

TEST_CASE("AveragePooling2D same padding on both sides, with overlapping windows", "[pooling]") {
  // 3x3 windows, stride 1, over x = 1 2 3 / 4 5 6 / 7 8 9: one position of
  // padding on every side; corner windows hold 4 positions, edges 6, the centre 9.
  AveragePooling2D pool = built(AveragePooling2D({.pool = 3, .strides = 1, .padding = Padding::Same}), Shape{3, 3, 1});
  REQUIRE(pool.output_shape() == Shape{3, 3, 1});
  const Tensor& y = pool.forward(tensor_of({1, 3, 3, 1}, counting(9, 1.0f)));
  CHECK(values(y) == std::vector<float>{(1 + 2 + 4 + 5) / 4.0f, (1 + 2 + 3 + 4 + 5 + 6) / 6.0f, (2 + 3 + 5 + 6) / 4.0f,
                                        (1 + 2 + 4 + 5 + 7 + 8) / 6.0f, 45 / 9.0f, (2 + 3 + 5 + 6 + 8 + 9) / 6.0f,
                                        (4 + 5 + 7 + 8) / 4.0f, (4 + 5 + 6 + 7 + 8 + 9) / 6.0f, (5 + 6 + 8 + 9) / 4.0f});
  CHECK(values(y) == std::vector<float>{3, 3.5f, 4, 4.5f, 5, 5.5f, 6, 6.5f, 7});
  // dy = each window's count: every window gives each of its positions 1, so
  // dx counts the windows over each position (4 at a corner, 6 on an edge, 9 in the centre).
  const Tensor& dx = pool.backward(tensor_of({1, 3, 3, 1}, {4, 6, 4, 6, 9, 6, 4, 6, 4}));
  CHECK(values(dx) == std::vector<float>{4, 6, 4, 6, 9, 6, 4, 6, 4});
}

TEST_CASE("AveragePooling2D overlapping valid windows add up their shares", "[pooling]") {
  // 3x3 windows, stride 2, on 5x5: the middle row and column lie in two windows, the centre in four.
  AveragePooling2D pool = built(AveragePooling2D({.pool = 3, .strides = 2}), Shape{5, 5, 1});
  const Tensor& y = pool.forward(tensor_of({1, 5, 5, 1}, counting(25)));
  CHECK(values(y) == std::vector<float>{6, 8, 16, 18});  // the windows' centres: x(1,1), x(1,3), x(3,1), x(3,3)
  const Tensor& dx = pool.backward(tensor_of({1, 2, 2, 1}, {9, 18, 27, 36}));
  CHECK(values(dx) == std::vector<float>{1, 1, 3, 2, 2,   //
                                         1, 1, 3, 2, 2,   //
                                         4, 4, 10, 6, 6,  //
                                         3, 3, 7, 4, 4,   //
                                         3, 3, 7, 4, 4});
}

TEST_CASE("GlobalAveragePooling2D takes each channel's mean over the image, flat", "[pooling]") {
  GlobalAveragePooling2D pool = built(GlobalAveragePooling2D(), Shape{2, 3, 2});
  REQUIRE(pool.output_shape() == Shape{2});
  // sample 0: channel 0 holds 0 2 4 6 8 10, channel 1 holds 1 3 5 7 9 11; sample 1: 12 more.
  const Tensor& y = pool.forward(tensor_of({2, 2, 3, 2}, counting(24)));
  REQUIRE(y.dimensions() == Tensor::Dimensions(2, 1, 1, 2));
  CHECK(values(y) == std::vector<float>{5, 6, 17, 18});
  const Tensor& dx = pool.backward(tensor_of({2, 1, 1, 2}, {6, -12, 3, 0}));
  CHECK(values(dx) == std::vector<float>{1, -2, 1, -2, 1, -2, 1, -2, 1, -2, 1, -2,  //
                                         0.5f, 0, 0.5f, 0, 0.5f, 0, 0.5f, 0, 0.5f, 0, 0.5f, 0});
}

// ---- shapes and errors -----------------------------------------------------------

TEST_CASE("Pooling output shapes, valid and same, strides defaulting to the pool", "[pooling]") {
  CHECK(built(AveragePooling2D(), Shape{26, 26, 32}).output_shape() == Shape{13, 13, 32});
  CHECK(built(AveragePooling2D(), Shape{11, 11, 64}).output_shape() == Shape{5, 5, 64});
  CHECK(AveragePooling2D({.pool = 3}).options().strides == Size2(3));
  CHECK(AveragePooling2D({.pool = {2, 3}}).options().strides == Size2(2, 3));
  CHECK(AveragePooling2D({.pool = 3, .strides = 1}).options().strides == Size2(1));
  CHECK(built(AveragePooling2D({.pool = 3}), Shape{10, 10, 1}).output_shape() == Shape{3, 3, 1});
  CHECK(built(AveragePooling2D({.pool = 3, .padding = Padding::Same}), Shape{10, 10, 1}).output_shape() ==
        Shape{4, 4, 1});
  CHECK(built(AveragePooling2D({.pool = 3, .strides = 2}), Shape{13, 13, 4}).output_shape() == Shape{6, 6, 4});
  CHECK(built(AveragePooling2D({.pool = 3, .strides = 2, .padding = Padding::Same}), Shape{13, 13, 4})
            .output_shape() == Shape{7, 7, 4});
  CHECK(built(AveragePooling2D({.pool = 2, .padding = Padding::Same}), Shape{13, 13, 4}).output_shape() ==
        Shape{7, 7, 4});
  CHECK(built(AveragePooling2D({.pool = {2, 3}}), Shape{8, 9, 2}).output_shape() == Shape{4, 3, 2});
  CHECK(built(AveragePooling2D(), Shape{26, 26, 32}).param_count() == 0);
  CHECK(built(GlobalAveragePooling2D(), Shape{7, 7, 64}).output_shape() == Shape{64});
  CHECK(built(GlobalAveragePooling2D(), Shape{7, 7, 64}).param_count() == 0);
  CHECK(AveragePooling2D().kind() == "AveragePooling2D");
  CHECK(GlobalAveragePooling2D().kind() == "GlobalAveragePooling2D");
}

TEST_CASE("Bad pooling options are UsageErrors, inputs that do not fit ShapeErrors naming the layer", "[pooling]") {
  REQUIRE_THROWS_AS(AveragePooling2D({.pool = 0}), UsageError);
  REQUIRE_THROWS_WITH(AveragePooling2D({.pool = {2, 0}}),
                      "AveragePooling2D: pool size must be positive, got (2, 0)");
  REQUIRE_THROWS_AS(AveragePooling2D({.pool = 2, .strides = {2, -1}}), UsageError);
  REQUIRE_THROWS_WITH(AveragePooling2D({.pool = 2, .strides = {0, 1}}),
                      "AveragePooling2D: strides must be positive, got (0, 1)");
  REQUIRE_THROWS_WITH(MaxPool2D({.pool = -1}), "MaxPool2D: pool size must be positive, got (-1, -1)");

  Random rng(1);
  AveragePooling2D pool({.pool = 3});
  REQUIRE_THROWS_AS(pool.build(Shape{2, 5, 1}, rng), ShapeError);
  REQUIRE_THROWS_WITH(pool.build(Shape{2, 5, 1}, rng),
                      Contains("average_pooling2d (AveragePooling2D)") && Contains("does not fit input (None, 2, 5, 1)"));
  REQUIRE_THROWS_WITH(pool.build(Shape{10}, rng), Contains("average_pooling2d (AveragePooling2D)") &&
                                                     Contains("expects images") && Contains("(None, 10)"));
  // Same padding fits any size.
  CHECK(AveragePooling2D({.pool = 3, .padding = Padding::Same}).build(Shape{2, 2, 1}, rng) == Shape{1, 1, 1});

  GlobalAveragePooling2D global;
  global.set_name("gap_1");
  REQUIRE_THROWS_AS(global.build(Shape{10}, rng), ShapeError);
  REQUIRE_THROWS_WITH(global.build(Shape{10}, rng),
                      Contains("gap_1 (GlobalAveragePooling2D)") && Contains("expects images") && Contains("(None, 10)"));
  REQUIRE(global.build(Shape{4, 4, 3}, rng) == Shape{3});
  REQUIRE_THROWS_AS(global.forward(Tensor(2, 4, 5, 3)), ShapeError);

  Sequential flat(Shape{16}, 1);
  REQUIRE_THROWS_AS(flat.add(GlobalAveragePooling2D()), ShapeError);
  REQUIRE_THROWS_AS(flat.add(AveragePooling2D()), ShapeError);
}

// ---- threads ----------------------------------------------------------------------

TEST_CASE("Average pooling gives the same bits on 1 and 2 threads", "[pooling][threads]") {
  Random rng(3);
  const Tensor x = testing::random_tensor(9, 9, 7, 5, rng);
  AveragePooling2D pool = built(AveragePooling2D({.pool = 3, .strides = 2, .padding = Padding::Same}), Shape{9, 7, 5});
  GlobalAveragePooling2D global = built(GlobalAveragePooling2D(), Shape{9, 7, 5});
  const Tensor dy_pool = testing::random_tensor(9, 5, 4, 5, rng);
  const Tensor dy_global = testing::random_tensor(9, 1, 1, 5, rng);

  const int saved = threads();
  std::vector<float> seen[2];
  for (const int t : {1, 2}) {
    set_threads(t);
    std::vector<float>& v = seen[t - 1];
    for (const Tensor* out : {&pool.forward(x), &pool.backward(dy_pool), &global.forward(x), &global.backward(dy_global)})
      v.insert(v.end(), out->data(), out->data() + out->size());
    Tensor y;
    pool.infer(x, y);
    v.insert(v.end(), y.data(), y.data() + y.size());
  }
  set_threads(saved);
  REQUIRE(seen[0].size() == seen[1].size());
  CHECK(std::memcmp(seen[0].data(), seen[1].data(), seen[0].size() * sizeof(float)) == 0);
}

// ---- a model that trains, saves and loads ----------------------------------------

TEST_CASE("A model with both average poolings trains, saves and loads bit for bit", "[pooling][model_file]") {
  const testing::Quadrants train = testing::quadrants(256, 7), test = testing::quadrants(128, 8);
  Sequential m(Shape{8, 8, 1}, 5);
  m.add(Conv2D({.filters = 4, .kernel = 3, .padding = Padding::Same, .activation = Activation::ReLU}));
  m.add(AveragePooling2D({.pool = 3, .strides = 2, .padding = Padding::Same}));
  m.add(Conv2D({.filters = 8, .kernel = 3, .padding = Padding::Same, .activation = Activation::ReLU}));
  m.add(GlobalAveragePooling2D());
  m.add(Dense({.units = 4, .activation = Activation::Softmax}));
  m.compile(Adam({.learning_rate = 0.02f}));
  REQUIRE(m.layer(1).output_shape() == Shape{4, 4, 4});
  REQUIRE(m.layer(3).output_shape() == Shape{8});

  const double before = m.evaluate(test.x, test.y).loss;
  const History h = m.fit(train.x, train.y, {.epochs = 8, .batch_size = 16, .seed = 2, .verbose = 0});
  const Evaluation after = m.evaluate(test.x, test.y);
  INFO("test loss " << before << " -> " << after.loss << ", accuracy " << after.accuracy);
  CHECK(h.last().loss < h.epochs.front().loss);
  CHECK(after.loss < 0.5 * before);
  CHECK(after.accuracy > 0.9);

  const testing::TempDir dir;
  m.save(dir / "pooling.loom");
  const Sequential back = load_model(dir / "pooling.loom");
  REQUIRE(back.size() == m.size());
  const auto* avg = dynamic_cast<const AveragePooling2D*>(&back.layer(1));
  REQUIRE(avg != nullptr);
  CHECK(avg->name() == "average_pooling2d");
  CHECK(avg->options().pool == Size2(3));
  CHECK(avg->options().strides == Size2(2));
  CHECK(avg->options().padding == Padding::Same);
  REQUIRE(dynamic_cast<const GlobalAveragePooling2D*>(&back.layer(3)) != nullptr);
  CHECK(back.layer(3).name() == "global_average_pooling2d");
  CHECK(back.layer(3).output_shape() == Shape{8});
  CHECK(testing::bitwise_equal(back.predict(test.x), m.predict(test.x)));
}

TEST_CASE("Non-square average pooling options survive a save and load", "[pooling][model_file]") {
  Sequential m(Shape{9, 10, 2}, 1);
  m.add(AveragePooling2D({.pool = {2, 3}, .strides = {1, 2}}));
  m.add(GlobalAveragePooling2D());
  m.add(Dense({.units = 3, .activation = Activation::Softmax}));
  m.compile(Adam());
  const testing::TempDir dir;
  m.save(dir / "pool.loom");
  const Sequential back = load_model(dir / "pool.loom");
  const auto& avg = dynamic_cast<const AveragePooling2D&>(back.layer(0));
  CHECK(avg.options().pool == Size2(2, 3));
  CHECK(avg.options().strides == Size2(1, 2));
  CHECK(avg.options().padding == Padding::Valid);
  CHECK(avg.output_shape() == Shape{8, 4, 2});
  Random rng(4);
  const Tensor x = testing::random_tensor(5, 9, 10, 2, rng);
  CHECK(testing::bitwise_equal(back.predict(x), m.predict(x)));
}

// 2x2 windows that tile the input (a pooled projection's shortcut) are
// walked directly rather than tap by tap: the same sums in the same order,
// ((t00 + t01) + t10) + t11, divided by 4; dx = dy / 4 on every tap. 19
// channels: not a whole number of vectors. Magnitudes spread over 2^-12 ..
// 2^12, so that the order of the sums shows in their rounding (values of one
// magnitude drawn uniformly add up exactly, in any order).
TEST_CASE("AveragePooling2D's 2x2 windows that tile the input: each mean summed in tap order, bit for bit", "[pooling]") {
  const Index n = 2, h = 6, w = 8, c = 19;
  AveragePooling2D pool = built(AveragePooling2D(), Shape{h, w, c});
  Random rng(5);
  Tensor x = testing::random_tensor(n, h, w, c, rng);
  for (Index i = 0; i < x.size(); ++i)
    x.data()[i] = std::ldexp(x.data()[i], static_cast<int>(rng.below(25)) - 12);
  const Tensor& y = pool.forward(x);
  Tensor expected(n, h / 2, w / 2, c);
  for (Index s = 0; s < n; ++s)
    for (Index oy = 0; oy < h / 2; ++oy)
      for (Index ox = 0; ox < w / 2; ++ox)
        for (Index ch = 0; ch < c; ++ch)
          expected(s, oy, ox, ch) = (((x(s, 2 * oy, 2 * ox, ch) + x(s, 2 * oy, 2 * ox + 1, ch)) +
                                      x(s, 2 * oy + 1, 2 * ox, ch)) + x(s, 2 * oy + 1, 2 * ox + 1, ch)) / 4.0f;
  CHECK(testing::bitwise_equal(y, expected));

  const Tensor dy = testing::random_tensor(n, h / 2, w / 2, c, rng);
  const Tensor& dx = pool.backward(dy);
  bool shares = true;
  for (Index s = 0; s < n; ++s)
    for (Index iy = 0; iy < h; ++iy)
      for (Index ix = 0; ix < w; ++ix)
        for (Index ch = 0; ch < c; ++ch) shares = shares && dx(s, iy, ix, ch) == dy(s, iy / 2, ix / 2, ch) / 4.0f;
  CHECK(shares);
}

// A pooled projection's shortcut (a Residual path) starts with the pool, which
// adds its dx onto the block's (Layer::backward_into): bit for bit backward's
// dx added by a pass, where windows do not overlap and where they do.
TEST_CASE("AveragePooling2D's backward_into assigns or adds the dx that backward returns, bit for bit", "[pooling]") {
  struct Case {
    const char* what;
    AveragePooling2DOptions o;
    Shape in;
  };
  const std::vector<Case> cases = {
      {"2x2 tiling the input", {}, Shape{6, 8, 5}},
      {"2x2 same, an odd input (edge windows of fewer taps)", {.padding = Padding::Same}, Shape{7, 5, 3}},
      {"3x3 stride 2, overlapping windows", {.pool = 3, .strides = 2, .padding = Padding::Same}, Shape{7, 7, 4}},
  };
  for (const Case& c : cases) {
    INFO(c.what);
    AveragePooling2D a = built(AveragePooling2D(c.o), c.in), b = built(AveragePooling2D(c.o), c.in);
    Random rng(11);
    const Tensor x = loom::testing::random_tensor(3, c.in[0], c.in[1], c.in[2], rng);
    const Shape out = a.output_shape();
    const Tensor dy = loom::testing::random_tensor(3, out[0], out[1], out[2], rng);
    a.forward(x);
    b.forward(x);
    const Tensor expected = a.backward(dy);

    Tensor dx = loom::testing::random_tensor(3, c.in[0], c.in[1], c.in[2], rng);  // Assign overwrites it
    b.backward_into(dy, dx, GradientWrite::Assign);
    CHECK(loom::testing::bitwise_equal(dx, expected));

    const Tensor before = loom::testing::random_tensor(3, c.in[0], c.in[1], c.in[2], rng);
    dx = before;
    b.backward_into(dy, dx, GradientWrite::Add);
    Tensor sum = before;
    add_tensors(sum, expected, sum);
    CHECK(loom::testing::bitwise_equal(dx, sum));

    Tensor wrong(2, c.in[0], c.in[1], c.in[2]);
    CHECK_THROWS_WITH(b.backward_into(dy, wrong, GradientWrite::Add), Contains("backward_into adds onto dx"));
  }
}
