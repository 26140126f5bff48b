// BatchNormalization: gradients in both modes against finite differences, the
// batch statistics and Keras's moving-average rule on hand-made numbers, a
// double-precision reference computed here, results independent of the
// thread count, options, a model that trains, saves and loads with it, and
// fold_batch_norm; the training fusion with a ReLU after it.

#include <catch2/catch.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "gradient_check.hpp"
#include "loom/io/crc32.hpp"
#include "loom/io/model_file.hpp"
#include "loom/layers/batch_normalization.hpp"
#include "loom/layers/fold_batch_norm.hpp"
#include "loom/layers/global_average_pooling2d.hpp"
#include "loom/layers/layer_chain.hpp"
#include "loom/layers/relu.hpp"
#include "loom/layers/residual.hpp"
#include "loom/search/embed.hpp"
#include "loom/threads.hpp"
#include "temp_dir.hpp"
#include "toy_model.hpp"

using namespace loom;
using Catch::Contains;

namespace {

// A built layer whose gamma, beta and moving statistics differ per channel
// and from their initial values, so a check exercises each of them.
BatchNormalization built_bn(const Shape& input, BatchNormalizationOptions o = {}) {
  BatchNormalization bn(o);
  Random rng(3);
  bn.build(input, rng);
  const Index c = input.channels();
  for (Index ch = 0; ch < c; ++ch) {
    const float t = static_cast<float>(ch) / static_cast<float>(c);
    bn.params()[0].value[ch] = 0.5f + 1.5f * t;    // gamma
    bn.params()[1].value[ch] = -0.3f + 0.8f * t;   // beta
    bn.params()[2].value[ch] = 0.2f - 0.5f * t;    // moving_mean
    bn.params()[3].value[ch] = 0.4f + 2.0f * t;    // moving_variance
  }
  return bn;
}

// Per channel mean and biased variance of the rows of t, in double.
struct ChannelMoments {
  std::vector<double> mean, var;
};
ChannelMoments moments(const Tensor& t) {
  const Index c = t.dimension(3), rows = t.size() / c;
  ChannelMoments m{std::vector<double>(static_cast<std::size_t>(c), 0.0), std::vector<double>(static_cast<std::size_t>(c), 0.0)};
  for (Index ch = 0; ch < c; ++ch) {
    double s = 0.0, s2 = 0.0;
    for (Index r = 0; r < rows; ++r) s += t.data()[r * c + ch];
    const double mean = s / static_cast<double>(rows);
    for (Index r = 0; r < rows; ++r) s2 += (t.data()[r * c + ch] - mean) * (t.data()[r * c + ch] - mean);
    m.mean[static_cast<std::size_t>(ch)] = mean;
    m.var[static_cast<std::size_t>(ch)] = s2 / static_cast<double>(rows);
  }
  return m;
}

}  // namespace

TEST_CASE("BatchNormalization's gradients match finite differences in training and inference", "[batch_norm][gradient_check]") {
  const Mode mode = GENERATE(Mode::Training, Mode::Inference);
  INFO("mode " << to_string(mode));
  SECTION("images: per channel over the batch and the pixels") {
    BatchNormalization bn = built_bn(Shape{3, 3, 4});
    REQUIRE_LAYER_GRADIENTS(bn, Shape{3, 3, 4}, {.batch = 2, .mode = mode});
  }
  SECTION("flat features: per feature over the batch") {
    BatchNormalization bn = built_bn(Shape{5});
    REQUIRE_LAYER_GRADIENTS(bn, Shape{5}, {.batch = 4, .mode = mode});
  }
  SECTION("without an input gradient (a first layer): gamma and beta alone") {
    BatchNormalization bn = built_bn(Shape{2, 2, 3});
    bn.set_needs_input_gradient(false);
    REQUIRE_LAYER_GRADIENTS(bn, Shape{2, 2, 3}, {.batch = 3, .mode = mode});
  }
}

TEST_CASE("BatchNormalization training forward uses batch statistics and moves the moving ones by Keras's rule", "[batch_norm]") {
  // Two features over a batch of 4: (1, 2, 3, 6) has mean 3 and biased
  // variance 3.5; (-2, 0, 2, 4) mean 1, variance 5. Every number below is exact in float.
  BatchNormalization bn = built_bn(Shape{2}, {.momentum = 0.75f});
  bn.params()[2].value << 0.0f, 0.0f;
  bn.params()[3].value << 1.0f, 1.0f;
  const std::array<float, 8> values{1, -2, 2, 0, 3, 2, 6, 4};
  const Tensor x = Eigen::TensorMap<const Tensor>(values.data(), 4, 1, 1, 2);
  bn.forward(x);
  CHECK(bn.moving_mean()[0] == 0.75f);        // 0 * 0.75 + 3 * 0.25
  CHECK(bn.moving_mean()[1] == 0.25f);        // 0 * 0.75 + 1 * 0.25
  CHECK(bn.moving_variance()[0] == 1.625f);   // 1 * 0.75 + 3.5 * 0.25
  CHECK(bn.moving_variance()[1] == 2.0f);     // 1 * 0.75 + 5 * 0.25
  bn.forward(x);
  CHECK(bn.moving_mean()[0] == 1.3125f);      // 0.75 * 0.75 + 3 * 0.25
  CHECK(bn.moving_variance()[1] == 2.75f);    // 2 * 0.75 + 5 * 0.25

  SECTION("Keras's default momentum keeps 99%") {
    BatchNormalization keras = built_bn(Shape{2});
    keras.params()[2].value << 1.0f, 1.0f;
    keras.params()[3].value << 1.0f, 1.0f;
    keras.forward(x);
    CHECK(keras.moving_mean()[0] == Approx(0.99 * 1 + 0.01 * 3).epsilon(1e-6));
    CHECK(keras.moving_variance()[1] == Approx(0.99 * 1 + 0.01 * 5).epsilon(1e-6));
  }
}

TEST_CASE("BatchNormalization training output has per-channel mean 0 and variance 1 before gamma and beta", "[batch_norm]") {
  Random rng(7);
  Tensor x = testing::random_tensor(4, 5, 3, 3, rng, -2.0f, 2.0f);
  for (Index i = 0; i < x.size(); ++i) x.data()[i] += 10.0f * static_cast<float>(i % 3);  // channel offsets 0, 10, 20
  BatchNormalization bn(BatchNormalizationOptions{.epsilon = 1e-6f});
  bn.build(Shape{5, 3, 3}, rng);
  const ChannelMoments plain = moments(bn.forward(x));
  for (std::size_t ch = 0; ch < 3; ++ch) {
    CHECK(std::abs(plain.mean[ch]) < 1e-6);
    CHECK(plain.var[ch] == Approx(1.0).epsilon(1e-5));
  }
  bn.params()[0].value.setConstant(2.0f);  // gamma: standard deviation 2
  bn.params()[1].value.setConstant(3.0f);  // beta: mean 3
  const ChannelMoments scaled = moments(bn.forward(x));
  for (std::size_t ch = 0; ch < 3; ++ch) {
    CHECK(scaled.mean[ch] == Approx(3.0).epsilon(1e-6));
    CHECK(scaled.var[ch] == Approx(4.0).epsilon(1e-5));
  }
}

TEST_CASE("BatchNormalization inference uses the moving statistics and leaves them", "[batch_norm]") {
  BatchNormalization bn = built_bn(Shape{1, 2, 3});
  bn.set_mode(Mode::Inference);
  const std::array<float, 12> values{1, 2, 3, 4, 5, 6, -1, -2, -3, 0.5f, 0.25f, 0.125f};
  const Tensor x = Eigen::TensorMap<const Tensor>(values.data(), 2, 1, 2, 3);
  const Eigen::VectorXf mean_before = bn.moving_mean(), var_before = bn.moving_variance();
  const Tensor& y = bn.forward(x);
  for (Index i = 0; i < x.size(); ++i) {
    const Index ch = i % 3;
    const double expected = bn.gamma()[ch] * (x.data()[i] - static_cast<double>(bn.moving_mean()[ch])) /
                                std::sqrt(static_cast<double>(bn.moving_variance()[ch]) + 1e-3) +
                            bn.beta()[ch];
    CHECK(y.data()[i] == Approx(expected).epsilon(1e-6).margin(1e-6));
  }
  CHECK(bn.moving_mean() == mean_before);
  CHECK(bn.moving_variance() == var_before);
  Tensor inferred;
  bn.infer(x, inferred);
  CHECK(testing::bitwise_equal(inferred, y));
}

TEST_CASE("BatchNormalization matches a double-precision reference, forward and backward, far from zero", "[batch_norm]") {
  // Channel means up to 400 with spreads of about 0.3: the variance must not
  // cancel away. The reference follows the textbook chain rule through mean
  // and variance, term by term. Tolerances allow for the float rounding of
  // the channel's mean, which the input itself carries (half a float step at
  // the mean, times 1 / std).
  const Index n = 3, h = 4, w = 2, c = 5, rows = n * h * w;
  Random rng(11);
  Tensor x = testing::random_tensor(n, h, w, c, rng);
  for (Index i = 0; i < x.size(); ++i) x.data()[i] = x.data()[i] * 0.5f + 100.0f * static_cast<float>(i % c);
  const Tensor dy = testing::random_tensor(n, h, w, c, rng);
  BatchNormalization bn = built_bn(Shape{h, w, c});
  const Tensor y = bn.forward(x);
  const Tensor dx = bn.backward(dy);

  const double eps = 1e-3, m = static_cast<double>(rows);
  const ChannelMoments mom = moments(x);
  for (Index ch = 0; ch < c; ++ch) {
    const std::size_t k = static_cast<std::size_t>(ch);
    const double mu = mom.mean[k], var = mom.var[k], g = bn.gamma()[ch], b = bn.beta()[ch];
    const double inv_std = 1.0 / std::sqrt(var + eps);
    const float mean_f = static_cast<float>(mu);
    const double x_hat_err = (std::nextafter(mean_f, std::numeric_limits<float>::infinity()) - mean_f) * inv_std;
    double dgamma = 0.0, dbeta = 0.0, dvar = 0.0, dmu = 0.0, centred_sum = 0.0;
    for (Index r = 0; r < rows; ++r) {
      const double xi = x.data()[r * c + ch], gi = dy.data()[r * c + ch];
      CHECK(y.data()[r * c + ch] == Approx(g * (xi - mu) * inv_std + b).epsilon(1e-5).margin(1e-5 + g * x_hat_err));
      dgamma += gi * (xi - mu) * inv_std;
      dbeta += gi;
      dvar += gi * g * (xi - mu) * -0.5 * std::pow(var + eps, -1.5);
      dmu += gi * g * -inv_std;
      centred_sum += -2.0 * (xi - mu);
    }
    dmu += dvar * centred_sum / m;
    CHECK(bn.params()[0].grad[ch] == Approx(dgamma).epsilon(1e-5).margin(m * (1e-5 + x_hat_err)));
    CHECK(bn.params()[1].grad[ch] == Approx(dbeta).epsilon(1e-5).margin(1e-5));
    for (Index r = 0; r < rows; ++r) {
      const double xi = x.data()[r * c + ch], gi = dy.data()[r * c + ch];
      const double expected = gi * g * inv_std + dvar * 2.0 * (xi - mu) / m + dmu / m;
      CHECK(dx.data()[r * c + ch] == Approx(expected).epsilon(1e-4).margin(g * inv_std * (1e-5 + 2 * x_hat_err)));
    }
    // the moving statistics took 1% of the batch's (Keras's default momentum 0.99)
    CHECK(bn.moving_mean()[ch] == Approx(0.99 * (0.2 - 0.5 * ch / 5.0) + 0.01 * mu).epsilon(1e-6));
    CHECK(bn.moving_variance()[ch] == Approx(0.99 * (0.4 + 2.0 * ch / 5.0) + 0.01 * var).epsilon(1e-6));
  }
}

TEST_CASE("BatchNormalization gives the same bits on 1 and 2 threads", "[batch_norm]") {
  // 8 x 16 x 16 x 16: 32K values, several blocks of rows, the parallel path.
  Random rng(5);
  const Tensor x = testing::random_tensor(8, 16, 16, 16, rng);
  const Tensor dy = testing::random_tensor(8, 16, 16, 16, rng);
  struct Run {
    Tensor y, dx, y_inference;
    Eigen::VectorXf dgamma, dbeta, moving_mean, moving_variance;
  };
  const int saved = threads();
  auto run = [&](int t) {
    set_threads(t);
    BatchNormalization bn = built_bn(Shape{16, 16, 16});
    Run out;
    out.y = bn.forward(x);
    out.dx = bn.backward(dy);
    out.dgamma = bn.params()[0].grad;
    out.dbeta = bn.params()[1].grad;
    out.moving_mean = bn.moving_mean();
    out.moving_variance = bn.moving_variance();
    bn.infer(x, out.y_inference);
    return out;
  };
  const Run one = run(1), two = run(2);
  set_threads(saved);
  CHECK(testing::bitwise_equal(one.y, two.y));
  CHECK(testing::bitwise_equal(one.dx, two.dx));
  CHECK(testing::bitwise_equal(one.y_inference, two.y_inference));
  CHECK(one.dgamma == two.dgamma);
  CHECK(one.dbeta == two.dbeta);
  CHECK(one.moving_mean == two.moving_mean);
  CHECK(one.moving_variance == two.moving_variance);
}

TEST_CASE("A BatchNormalization and the ReLU after it train as one pass, with the bits of the two layers apart", "[batch_norm]") {
  const Mode mode = GENERATE(Mode::Training, Mode::Inference);
  INFO("mode " << to_string(mode));
  // 4 x 12 x 12 x 16: several blocks of rows, on 2 threads; beta from -0.3 to
  // 0.5 over the channels, so the ReLU cuts a different share of each.
  const Shape shape{12, 12, 16};
  Random rng(9);
  const Tensor x = testing::random_tensor(4, 12, 12, 16, rng);
  const Tensor dy = testing::random_tensor(4, 12, 12, 16, rng);

  BatchNormalization bn = built_bn(shape);  // the two layers apart: the reference
  ReLU relu;
  relu.build(shape, rng);
  bn.set_mode(mode);
  const Tensor y = relu.forward(bn.forward(x));
  const Tensor dx = bn.backward(relu.backward(dy));

  std::vector<std::unique_ptr<Layer>> pair;
  pair.push_back(std::make_unique<BatchNormalization>(built_bn(shape)));
  pair.push_back(std::make_unique<ReLU>());
  pair[1]->build(shape, rng);
  chain::fuse_relus(pair);
  auto& fused_bn = dynamic_cast<BatchNormalization&>(*pair[0]);
  REQUIRE(fused_bn.fused_relu());
  REQUIRE(dynamic_cast<ReLU&>(*pair[1]).input_rectified());
  fused_bn.set_mode(mode);
  const Tensor y_fused = chain::forward(pair, x);
  const Tensor dx_fused = chain::backward(pair, dy);

  CHECK(std::count_if(y.data(), y.data() + y.size(), [](float v) { return v == 0.0f; }) > y.size() / 5);
  CHECK(testing::bitwise_equal(y_fused, y));
  CHECK(testing::bitwise_equal(dx_fused, dx));
  CHECK(fused_bn.params()[0].grad == bn.params()[0].grad);  // dgamma
  CHECK(fused_bn.params()[1].grad == bn.params()[1].grad);  // dbeta
  CHECK(fused_bn.moving_mean() == bn.moving_mean());
  Tensor y_infer;
  chain::infer(pair, x, y_infer);  // never fused: the layers' own infer
  Tensor y_infer_apart, h;
  bn.infer(x, h);
  relu.infer(h, y_infer_apart);
  CHECK(testing::bitwise_equal(y_infer, y_infer_apart));
}

TEST_CASE("Containers fuse a BatchNormalization with the ReLU right after it, and nothing else", "[batch_norm]") {
  Sequential m = testing::conv_bn_relu_model(1);  // Conv2D, BatchNormalization, ReLU, MaxPool2D, ...
  CHECK(dynamic_cast<const BatchNormalization&>(m.layer(1)).fused_relu());
  CHECK(dynamic_cast<const ReLU&>(m.layer(2)).input_rectified());

  Sequential other(Shape{6, 6, 2});
  other.add(ReLU());  // no BatchNormalization before it
  other.add(BatchNormalization());
  other.add(MaxPool2D());  // not a ReLU after it
  other.add(ReLU());
  CHECK_FALSE(dynamic_cast<const ReLU&>(other.layer(0)).input_rectified());
  CHECK_FALSE(dynamic_cast<const BatchNormalization&>(other.layer(1)).fused_relu());
  CHECK_FALSE(dynamic_cast<const ReLU&>(other.layer(3)).input_rectified());

  Residual block;
  block.add(Conv2D({.filters = 2, .kernel = 3, .padding = Padding::Same}));
  block.add(BatchNormalization());
  block.add(ReLU());
  Sequential with_block(Shape{6, 6, 2});
  with_block.add(std::move(block));
  const Layer& added = with_block.layer(0);
  CHECK(dynamic_cast<const BatchNormalization&>(*added.children()[1]).fused_relu());
  CHECK(dynamic_cast<const ReLU&>(*added.children()[2]).input_rectified());
}

TEST_CASE("BatchNormalization refuses bad options and misfit tensors", "[batch_norm]") {
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  for (const float momentum : {-0.1f, 1.0f, 1.5f, nan})
    CHECK_THROWS_WITH(BatchNormalization({.momentum = momentum}), Contains("momentum must be in [0, 1)"));
  for (const float epsilon : {0.0f, -1e-3f, inf, nan})
    CHECK_THROWS_WITH(BatchNormalization({.epsilon = epsilon}), Contains("epsilon must be positive and finite"));
  CHECK_THROWS_AS(BatchNormalization({.momentum = 1.0f}), UsageError);
  CHECK_NOTHROW(BatchNormalization({.momentum = 0.0f, .epsilon = 1e-9f}));
  for (const float gamma : {inf, -inf, nan})
    CHECK_THROWS_WITH(BatchNormalization({.initial_gamma = gamma}), Contains("initial_gamma must be finite"));
  // The value as itself, not std::to_string's "-0.000000" or "0.000000".
  CHECK_THROWS_WITH(BatchNormalization({.momentum = -1e-10f}),
                    Contains("momentum must be in [0, 1), got -1.00000001e-10"));
  CHECK_THROWS_WITH(BatchNormalization({.epsilon = -1e-10f}),
                    Contains("epsilon must be positive and finite, got -1.00000001e-10"));
  CHECK_THROWS_WITH(BatchNormalization({.initial_gamma = inf}), Contains("initial_gamma must be finite, got inf"));

  BatchNormalization bn = built_bn(Shape{2, 2, 3});
  CHECK(bn.output_shape() == (Shape{2, 2, 3}));
  CHECK_THROWS_AS(bn.forward(Tensor(2, 2, 2, 4)), ShapeError);  // 4 channels, built for 3
  bn.forward(Tensor(2, 2, 2, 3).setZero());
  CHECK_THROWS_AS(bn.backward(Tensor(3, 2, 2, 3).setZero()), ShapeError);  // not the last forward's batch
}

TEST_CASE("A Conv2D, BatchNormalization, ReLU model trains, saves its moving statistics and loads bit for bit", "[batch_norm][model_file]") {
  const testing::Quadrants d = testing::quadrants(128, 3);
  Sequential m = testing::conv_bn_relu_model(1);
  const std::string summary = m.summary_string();
  CHECK_THAT(summary, Contains("batch_normalization (BatchNormalization)"));
  CHECK_THAT(summary, Contains("Non-trainable params: 8"));  // moving mean and variance of 4 channels
  CHECK(m.param_count() == (3 * 3 * 4 + 4) + 16 + (36 * 4 + 4));
  CHECK(m.trainable_param_count() == m.param_count() - 8);

  const History h = m.fit(d.x, d.y, {.epochs = 6, .batch_size = 16, .verbose = 0});
  CHECK(h.epochs.back().loss < 0.7 * h.epochs.front().loss);
  CHECK(h.epochs.back().accuracy > 0.75);
  const auto& bn = dynamic_cast<const BatchNormalization&>(m.layer(1));
  CHECK(bn.moving_mean().cwiseAbs().maxCoeff() > 1e-3f);  // moved from zeros

  const testing::TempDir dir;
  m.save(dir / "bn.loom");
  Sequential back = load_model(dir / "bn.loom");
  const auto& bn_back = dynamic_cast<const BatchNormalization&>(back.layer(1));
  CHECK(bn_back.moving_mean() == bn.moving_mean());
  CHECK(bn_back.moving_variance() == bn.moving_variance());
  CHECK(bn_back.options().momentum == bn.options().momentum);
  CHECK(bn_back.options().epsilon == bn.options().epsilon);
  CHECK(testing::bitwise_equal(back.predict(d.x), m.predict(d.x)));
}

TEST_CASE("A model file with bad BatchNormalization options is refused", "[batch_norm][model_file]") {
  std::vector<std::uint8_t> bytes = encode_model(testing::conv_bn_relu_model(1));
  // The options follow the kind and the name: momentum 0.99f becomes 1.5f.
  const float good = 0.99f, bad = 1.5f;
  const auto* g = reinterpret_cast<const std::uint8_t*>(&good);
  const auto at = std::search(bytes.begin(), bytes.end(), g, g + 4);
  REQUIRE(at != bytes.end());
  std::memcpy(&*at, &bad, 4);
  const std::uint32_t c = crc32(std::span<const std::uint8_t>(bytes).first(bytes.size() - 4));
  std::memcpy(bytes.data() + bytes.size() - 4, &c, 4);
  CHECK_THROWS_AS(decode_model(bytes), DataError);
  CHECK_THROWS_WITH(decode_model(bytes), Contains("momentum must be in [0, 1)"));
}

namespace {

// Trains m a little (statistics and gammas away from their start), folds it,
// and checks that the folded model predicts what m predicts within 1e-5 and
// that m is untouched; returns the folded model.
// A stem conv-BN-ReLU, then the ResNet basic block: conv-BN-ReLU-conv-BN on
// the main path, a strided 1x1 conv and BN on the shortcut; then global
// average pooling and a softmax Dense. Not compiled.
// With the default filters the stem and the strided layers are im2col with
// their patches written out and the block's 3x3 is Winograd; with 16 and 16
// the stem is direct and the strided layers read their patches in place.
Sequential one_block_resnet(const Shape& input, Index stem_filters = 4, Index filters = 8) {
  Sequential m(input, 6);
  m.add(Conv2D({.filters = stem_filters, .kernel = 3, .padding = Padding::Same}));
  m.add(BatchNormalization());
  m.add(ReLU());
  Residual block({.activation = Activation::ReLU});
  block.add(Conv2D({.filters = filters, .kernel = 3, .strides = 2, .padding = Padding::Same}));
  block.add(BatchNormalization());
  block.add(ReLU());
  block.add(Conv2D({.filters = filters, .kernel = 3, .padding = Padding::Same}));
  block.add(BatchNormalization());
  block.add_shortcut(Conv2D({.filters = filters, .kernel = 1, .strides = 2}));
  block.add_shortcut(BatchNormalization());
  m.add(std::move(block));
  m.add(GlobalAveragePooling2D());
  m.add(Dense({.units = 4, .activation = Activation::Softmax}));
  return m;
}

Sequential train_and_fold(Sequential& m) {
  m.compile(Adam({.learning_rate = 0.01f}));
  const testing::Quadrants d = testing::quadrants(96, 9);
  m.fit(d.x, d.y, {.epochs = 3, .batch_size = 16, .verbose = 0});
  const Tensor expected = m.predict(d.x);
  Sequential folded = fold_batch_norm(m);
  const Tensor got = folded.predict(d.x);
  REQUIRE(got.dimensions() == expected.dimensions());
  CHECK(testing::worst_difference(got.data(), expected.data(), static_cast<std::size_t>(got.size())) < 1e-5f);
  CHECK(testing::bitwise_equal(m.predict(d.x), expected));
  return folded;
}

}  // namespace

TEST_CASE("fold_batch_norm drops the foldable BatchNormalization layers and predicts the same", "[batch_norm]") {
  // conv (no activation) -> BN -> ReLU folds into one conv with ReLU; a BN
  // after a conv with ReLU stays; dense (no activation) -> BN folds, no ReLU.
  Sequential m(Shape{8, 8, 1}, 4);
  m.add(Conv2D({.filters = 4, .kernel = 3}));
  m.add(BatchNormalization());
  m.add(ReLU());
  m.add(MaxPool2D());
  m.add(Conv2D({.filters = 6, .kernel = 3, .activation = Activation::ReLU}));
  m.add(BatchNormalization());
  m.add(Flatten());
  m.add(Dense({.units = 8}));
  m.add(BatchNormalization());
  m.add(Dense({.units = 4, .activation = Activation::Softmax}));
  Sequential folded = train_and_fold(m);
  REQUIRE(folded.size() == 7);
  const std::vector<std::string_view> kinds{"Conv2D", "MaxPooling2D", "Conv2D", "BatchNormalization",
                                            "Flatten", "Dense", "Dense"};
  for (std::size_t i = 0; i < kinds.size(); ++i) CHECK(folded.layer(i).kind() == kinds[i]);
  CHECK(dynamic_cast<const Conv2D&>(folded.layer(0)).activation() == Activation::ReLU);
  CHECK(dynamic_cast<const Dense&>(folded.layer(5)).activation() == Activation::None);
  CHECK(folded.layer(0).name() == m.layer(0).name());
  CHECK(folded.layer(3).name() == m.layer(5).name());
  CHECK(folded.compiled());
  CHECK(folded.param_count() == m.param_count() - 4 * 4 - 4 * 8);
  CHECK(m.size() == 10);  // the original is untouched
}

TEST_CASE("fold_batch_norm folds the BatchNormalization layers inside residual blocks", "[batch_norm][residual]") {
  // After folding, three convolutions.
  Sequential m = one_block_resnet(Shape{8, 8, 1});
  Sequential folded = train_and_fold(m);
  REQUIRE(folded.size() == 4);
  CHECK(folded.layer(0).kind() == "Conv2D");
  CHECK(dynamic_cast<const Conv2D&>(folded.layer(0)).activation() == Activation::ReLU);
  const auto& r = dynamic_cast<const Residual&>(folded.layer(1));
  REQUIRE(r.main_path().size() == 2);
  REQUIRE(r.shortcut_path().size() == 1);
  CHECK(dynamic_cast<const Conv2D&>(*r.main_path()[0]).activation() == Activation::ReLU);
  CHECK(dynamic_cast<const Conv2D&>(*r.main_path()[1]).activation() == Activation::None);
  CHECK(r.shortcut_path()[0]->kind() == "Conv2D");
  CHECK(r.options().activation == Activation::ReLU);
  CHECK(r.name() == m.layer(3).name());
  CHECK(folded.param_count() == m.param_count() - 4 * 4 - 3 * 4 * 8);
}

TEST_CASE("fold_batch_norm_into refuses a layer with an activation", "[batch_norm]") {
  Random rng(1);
  Dense relu({.units = 3, .activation = Activation::ReLU});
  relu.build(Shape{2}, rng);
  BatchNormalization bn;
  bn.build(Shape{3}, rng);
  CHECK_FALSE(can_fold_batch_norm(relu, bn));
  CHECK_THROWS_WITH(fold_batch_norm_into(relu, bn), Contains("cannot be folded"));
  Dense plain({.units = 3});
  plain.build(Shape{2}, rng);
  CHECK(can_fold_batch_norm(plain, bn));
}

namespace {

// Every BatchNormalization in `model`, nested ones too, with the per-channel values of built_bn.
void vary_batch_norms(Sequential& model) {
  for (std::size_t i = 0; i < model.size(); ++i)
    for_each_layer(model.layer(i), [](Layer& l) {
      if (auto* bn = dynamic_cast<BatchNormalization*>(&l)) {
        const BatchNormalization varied = built_bn(bn->input_shape());
        for (int p = 0; p < 4; ++p) bn->params()[p].value = varied.params()[p].value;
      }
    });
}

// A chain's inference one layer after another, each through its own infer.
Tensor one_by_one(chain::Layers layers, const Tensor& x) {
  Tensor h = x;
  for (const auto& l : layers) {
    Tensor out;
    static_cast<const Layer&>(*l).infer(h, out);
    h = out;
  }
  return h;
}

}  // namespace

TEST_CASE("Inference runs a BatchNormalization and its ReLU in a convolution's output stage, bitwise as one by one",
          "[batch_norm][residual]") {
  // Under every algorithm: direct, Winograd, im2col with its patches written
  // out and read in place.
  const auto [stem, filters] = GENERATE(std::pair<Index, Index>{4, 8}, std::pair<Index, Index>{16, 16});
  Sequential m = one_block_resnet(Shape{8, 8, 2}, stem, filters);
  m.compile(Adam());
  const ConvAlgorithm stem_algorithm = stem == 16 ? ConvAlgorithm::Direct : ConvAlgorithm::Im2col;
  CHECK(dynamic_cast<const Conv2D&>(m.layer(0)).algorithm() == stem_algorithm);
  vary_batch_norms(m);
  Random rng(9);
  const Tensor x = loom::testing::random_tensor(5, 8, 8, 2, rng);

  // The reference: every layer's own infer, the block's paths and sum by hand.
  Tensor h = x;
  for (std::size_t i = 0; i < m.size(); ++i) {
    Tensor out;
    if (const auto* r = dynamic_cast<const Residual*>(&m.layer(i)))
      add_tensors(one_by_one(r->main_path(), h), one_by_one(r->shortcut_path(), h), out, Activation::ReLU);
    else
      m.layer(i).infer(h, out);
    h = out;
  }
  CHECK(loom::testing::bitwise_equal(m.predict(x, 5), h));
  CHECK(loom::testing::bitwise_equal(m.predict(x, 2), h));

  // Embedding at the first BatchNormalization stops before its ReLU.
  Tensor conv, normalized;
  m.layer(0).infer(x, conv);
  m.layer(1).infer(conv, normalized);
  const Tensor embedded = m.embed(x, m.layer(1).name());
  CHECK(loom::testing::bitwise_equal(embedded, loom::detail::as_embeddings(normalized)));
  CHECK(*std::min_element(embedded.data(), embedded.data() + embedded.size()) < 0.0f);
}

TEST_CASE("A convolution applies a BatchNormalization's map and ReLU in its output stage with the bits of the layers apart",
          "[batch_norm][conv]") {
  // Every algorithm, filter counts that fill whole vectors and that do not
  // (24, 40: masked lanes), with and without the ReLU.
  struct Case {
    ConvAlgorithm algorithm;
    Index channels, filters, stride;
  };
  const Case c = GENERATE(Case{ConvAlgorithm::Im2col, 3, 24, 1}, Case{ConvAlgorithm::Im2col, 16, 40, 2},
                          Case{ConvAlgorithm::Im2col, 32, 32, 2}, Case{ConvAlgorithm::Direct, 1, 24, 1},
                          Case{ConvAlgorithm::Direct, 3, 32, 2}, Case{ConvAlgorithm::Winograd4, 8, 40, 1},
                          Case{ConvAlgorithm::Winograd2, 16, 16, 1});
  const bool relu = GENERATE(false, true);
  CAPTURE(to_string(c.algorithm), c.channels, c.filters, c.stride, relu);
  const Shape input{9, 7, c.channels};
  Conv2D conv({.filters = c.filters, .kernel = 3, .strides = c.stride, .padding = Padding::Same,
               .algorithm = c.algorithm});
  Random rng(5);
  conv.build(input, rng);
  if (c.algorithm == ConvAlgorithm::Direct) conv.set_needs_input_gradient(false);
  REQUIRE(conv.algorithm() == c.algorithm);
  conv.params()[1].value.setRandom();
  const BatchNormalization bn = built_bn(conv.output_shape());
  const Tensor x = loom::testing::random_tensor(3, 9, 7, c.channels, rng);

  Tensor z, expected;
  conv.infer(x, z);
  bn.infer(z, expected);
  if (relu) activation::relu_forward(expected.data(), expected.data(), expected.size());
  Tensor got;
  const BatchNormalization::InferenceMap map = bn.inference_map();
  conv.infer_normalized(x, got, map.view(), relu);
  CHECK(loom::testing::bitwise_equal(got, expected));
  CHECK(std::any_of(got.data(), got.data() + got.size(), [](float v) { return v < 0.0f; }) == !relu);
}

TEST_CASE("A convolution with an activation of its own refuses a BatchNormalization's map", "[batch_norm][conv]") {
  Conv2D conv({.filters = 4, .kernel = 3, .activation = Activation::ReLU});
  Random rng(1);
  conv.build(Shape{5, 5, 2}, rng);
  const BatchNormalization bn = built_bn(conv.output_shape());
  Tensor y;
  CHECK_THROWS_WITH(conv.infer_normalized(Tensor(1, 5, 5, 2), y, bn.inference_map().view(), false),
                    Contains("without activation"));
}
