// The public gradient checker (loom/testing/gradient_check.hpp) checked
// itself: it passes a correct layer, fails each deliberately broken copy of
// it, builds and feeds a layer through check_layer, and its report says where
// and why.

#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "gradient_check.hpp"
#include "loom/layers/conv2d.hpp"
#include "loom/layers/maxpool2d.hpp"
#include "loom/layers/relu.hpp"

using namespace loom;
using loom::testing::check_gradients;
using loom::testing::check_layer;
using loom::testing::GradientCheckOptions;
using loom::testing::InputKind;

namespace {

// y = x W for a square W (n, n), with one deliberate bug chosen by `bug`.
enum class Bug {
  None,
  DxNotTransposed,
  GradAccumulates,
  GradScaled,
  GradScaledThinly,  // 0.1% too large: below every entry's tolerance, caught by the mean
  DxAccumulates,
  InferDiffers,
  ForwardNaNOffBase,  // forward gives NaN once x[0] leaves the value of the first call
};

class ToyLinear final : public Layer {
 public:
  explicit ToyLinear(Bug bug) : bug_(bug) {}
  std::string_view kind() const override { return "ToyLinear"; }
  std::string_view name_stem() const override { return "toy_linear"; }
  Shape build(const Shape& input, Random& rng) override {
    const Index n = input[0];
    params_ = {Param("kernel", {n, n})};
    for (Index i = 0; i < params_[0].size(); ++i) params_[0].value[i] = rng.uniform(-1.0f, 1.0f);
    return set_shapes(input, input);
  }
  const Tensor& forward(const Tensor& x) override {
    x_ = x;
    compute(x, y_);
    if (bug_ == Bug::ForwardNaNOffBase) {
      if (!base_) base_ = x.data()[0];
      if (x.data()[0] != *base_) y_.data()[0] = std::numeric_limits<float>::quiet_NaN();
    }
    return y_;
  }
  const Tensor& backward(const Tensor& dy) override {
    const Index b = x_.dimension(0), n = input_shape()[0];
    const ConstMatrixMap dY = as_matrix(dy, b, n), X = as_matrix(std::as_const(x_), b, n);
    MatrixMap dW(params_[0].grad.data(), n, n);
    if (bug_ == Bug::GradAccumulates)
      dW += X.transpose() * dY;
    else if (bug_ == Bug::GradScaled)
      dW = 1.03f * (X.transpose() * dY);  // 3% too large
    else if (bug_ == Bug::GradScaledThinly)
      dW = 1.001f * (X.transpose() * dY);
    else
      dW = X.transpose() * dY;
    if (dx_.dimension(0) != b) {
      dx_.resize(b, 1, 1, n);
      dx_.setZero();
    }
    if (bug_ == Bug::DxNotTransposed)
      as_matrix(dx_, b, n) = dY * W();
    else if (bug_ == Bug::DxAccumulates)
      as_matrix(dx_, b, n) += dY * W().transpose();
    else
      as_matrix(dx_, b, n) = dY * W().transpose();
    return dx_;
  }
  void infer(const Tensor& x, Tensor& y) const override {
    compute(x, y);
    if (bug_ == Bug::InferDiffers) y.data()[0] += 1e-6f;
  }
  std::span<Param> params() override { return params_; }
  std::span<const Param> params() const override { return params_; }

 private:
  ConstMatrixMap W() const { return {params_[0].value.data(), input_shape()[0], input_shape()[0]}; }
  void compute(const Tensor& x, Tensor& y) const {
    const Index b = x.dimension(0), n = input_shape()[0];
    resize_batch(y, b, output_shape());
    as_matrix(y, b, n) = as_matrix(x, b, n) * W();
  }
  Bug bug_;
  std::optional<float> base_;
  std::vector<Param> params_;
  Tensor x_, y_, dx_;
};

loom::testing::GradientReport check_toy(Bug bug) {
  ToyLinear toy(bug);
  GradientCheckOptions o;
  o.batch = 3;
  o.input = InputKind::Uniform;
  return check_layer(toy, Shape{4}, o);
}

}  // namespace

TEST_CASE("The gradient checker passes a correct layer and fails each deliberately broken one", "[gradient]") {
  const auto ok = check_toy(Bug::None);
  INFO(ok.describe());
  REQUIRE(ok.ok());
  REQUIRE(ok.worst_ratio() < 0.1);  // correct code passes with a wide margin

  SECTION("dx = dY W instead of dY W^T: a missing transpose") {
    const auto r = check_toy(Bug::DxNotTransposed);
    INFO(r.describe());
    CHECK_FALSE(r.ok());
    CHECK(r.tensors.at(0).worst_ratio > 10.0);
  }
  SECTION("a parameter gradient added to instead of assigned keeps the NaN sentinel") {
    const auto r = check_toy(Bug::GradAccumulates);
    INFO(r.describe());
    CHECK_FALSE(r.ok());
    REQUIRE_FALSE(r.problems.empty());
    CHECK_THAT(r.problems.front(), Catch::Contains("grad of kernel is not finite"));
  }
  SECTION("a parameter gradient 3% too large") {
    const auto r = check_toy(Bug::GradScaled);
    INFO(r.describe());
    CHECK_FALSE(r.ok());
    CHECK(r.tensors.at(1).worst_ratio > 2.0);
  }
  SECTION("a parameter gradient 0.1% too large everywhere: each entry within tolerance, the mean not") {
    const auto r = check_toy(Bug::GradScaledThinly);
    INFO(r.describe());
    CHECK_FALSE(r.ok());
    CHECK(r.tensors.at(1).worst_ratio <= 1.0);
    CHECK(r.tensors.at(1).mean_ratio > r.options.mean_ratio);
    CHECK_THAT(r.describe(), Catch::Contains("the mean is above"));
  }
  SECTION("the report names the worst entry by its coordinates") {
    const auto r = check_toy(Bug::DxNotTransposed);
    const loom::testing::TensorCheck& dx = r.tensors.at(0);
    REQUIRE(dx.shape == std::vector<Index>{3, 1, 1, 4});  // a flat input reads as (N, 1, 1, features)
    CHECK(dx.worst_coordinates() == "[" + std::to_string(dx.worst_index / 4) + ", 0, 0, " +
                                        std::to_string(dx.worst_index % 4) + "]");
    CHECK_THAT(r.describe(), Catch::Contains("dx (12 entries") && Catch::Contains(dx.worst_coordinates()));
  }
  SECTION("a dx buffer that accumulates across backward calls") {
    const auto r = check_toy(Bug::DxAccumulates);
    INFO(r.describe());
    CHECK_FALSE(r.ok());
    REQUIRE_FALSE(r.problems.empty());
    CHECK_THAT(r.problems.front(), Catch::Contains("not repeatable"));
  }
  SECTION("a forward that gives NaN off the base point: a NaN numeric entry fails, it is not skipped") {
    const auto r = check_toy(Bug::ForwardNaNOffBase);
    INFO(r.describe());
    CHECK_FALSE(r.ok());
    const loom::testing::TensorCheck& dx = r.tensors.at(0);
    CHECK(dx.worst_index == 0);
    CHECK(std::isinf(dx.worst_ratio));
    CHECK(std::isnan(dx.worst_numeric));
  }
  SECTION("infer that differs from forward in one value by 1e-6") {
    const auto r = check_toy(Bug::InferDiffers);
    INFO(r.describe());
    CHECK_FALSE(r.ok());
    REQUIRE_FALSE(r.problems.empty());
    CHECK_THAT(r.problems.front(), Catch::Contains("infer(x) differs from forward(x)"));
  }
}

TEST_CASE("check_layer builds a layer, draws its input and checks every gradient", "[gradient]") {
  SECTION("a convolution, built here from the options' seed") {
    Conv2D conv({.filters = 3, .kernel = 3, .padding = Padding::Same});
    REQUIRE_LAYER_GRADIENTS(conv, Shape{5, 4, 2});
    CHECK(conv.output_shape() == Shape{5, 4, 3});
  }
  SECTION("max pooling on distinct values, a batch of 3") {
    MaxPool2D pool;
    GradientCheckOptions o;
    o.input = InputKind::Distinct;
    o.batch = 3;
    const auto r = check_layer(pool, Shape{4, 6, 2}, o);
    INFO(r.describe());
    REQUIRE(r.ok());
    CHECK(r.tensors.at(0).shape == std::vector<Index>{3, 4, 6, 2});
  }
  SECTION("a first layer, which computes no dx: its parameters alone (the direct algorithm)") {
    Conv2D conv({.filters = 8, .kernel = 3});
    conv.set_needs_input_gradient(false);
    const auto r = check_layer(conv, Shape{6, 7, 1});
    REQUIRE(conv.algorithm() == ConvAlgorithm::Direct);
    INFO(r.describe());
    REQUIRE(r.ok());
    REQUIRE(r.tensors.size() == 2);
    CHECK(r.tensors[0].name == "kernel");
    CHECK(r.tensors[1].name == "bias");
  }
}

TEST_CASE("check_layer refuses bad options and a layer built for another shape", "[gradient]") {
  Conv2D conv({.filters = 2, .kernel = 3});
  REQUIRE(check_layer(conv, Shape{5, 5, 1}).ok());
  CHECK_THROWS_AS(check_layer(conv, Shape{6, 5, 1}), ShapeError);
  GradientCheckOptions o;
  o.batch = 0;
  CHECK_THROWS_WITH(check_layer(conv, Shape{5, 5, 1}, o), Catch::Contains("batch must be at least 1"));
  o = {};
  o.eps = 0.0;
  CHECK_THROWS_AS(check_layer(conv, Shape{5, 5, 1}, o), UsageError);
  ReLU unbuilt;
  const auto r = check_gradients(unbuilt, Tensor(1, 2, 2, 1));
  CHECK_FALSE(r.ok());
  CHECK_THAT(r.describe(), Catch::Contains("not built"));
}

TEST_CASE("A step across ReLU's kink fails, and the report says it is the input's fault", "[gradient]") {
  ReLU relu;
  Random rng(5);
  relu.build(Shape{2, 2, 1}, rng);
  Tensor x = loom::testing::away_from_zero(1, 2, 2, 1, rng);
  x.data()[2] = 0.0f;  // on the kink: the central difference is 1/2, the derivative 0 or 1
  const auto r = check_gradients(relu, x);
  INFO(r.describe());
  CHECK_FALSE(r.ok());
  CHECK(r.tensors.at(0).worst_index == 2);
  CHECK_THAT(r.describe(), Catch::Contains("crosses a kink"));
  CHECK_THAT(check_toy(Bug::DxNotTransposed).describe(), !Catch::Contains("kink"));
}
