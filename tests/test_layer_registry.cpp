// The layer registry and what it carries: layers defined outside loom save and
// load through it, non-trainable parameters are saved but never optimised,
// summaries count them apart, and Sequential::forward's mode reaches every layer.

#include <catch2/catch.hpp>

#include <algorithm>
#include <array>
#include <cstring>
#include <memory>
#include <sstream>

#include "gradient_check.hpp"
#include "loom/io/crc32.hpp"
#include "loom/io/model_file.hpp"
#include "loom/layer_registry.hpp"
#include "loom/layers/dense.hpp"
#include "loom/layers/flatten.hpp"
#include "temp_dir.hpp"
#include "toy_model.hpp"

using namespace loom;
using Catch::Contains;

namespace {

// y = x + shift (per channel, trainable); `seen` counts the samples forward
// saw in training mode (non-trainable, as a moving statistic).
class Shift final : public Layer {
 public:
  static constexpr std::string_view kKind = "TestShift";
  explicit Shift(float start) : start_(start) {}
  std::string_view kind() const override { return kKind; }
  std::string_view name_stem() const override { return "test_shift"; }

  Shape build(const Shape& input, Random&) override {
    params_ = {Param("shift", {input.channels()}), Param("seen", {1}, Trainable::No)};
    params_[0].value.setConstant(start_);
    return set_shapes(input, input);
  }
  const Tensor& forward(const Tensor& x) override {
    if (mode() == Mode::Training) params_[1].value[0] += static_cast<float>(x.dimension(0));
    infer(x, y_);
    return y_;
  }
  const Tensor& backward(const Tensor& dy) override {
    const Index c = input_shape().channels();
    params_[0].grad.setZero();
    for (Index i = 0; i < dy.size(); ++i) params_[0].grad[i % c] += dy.data()[i];
    return dy;
  }
  void infer(const Tensor& x, Tensor& y) const override {
    check_input(x);
    const Index c = input_shape().channels();
    y = x;
    for (Index i = 0; i < y.size(); ++i) y.data()[i] += params_[0].value[i % c];
  }
  std::span<Param> params() override { return params_; }
  std::span<const Param> params() const override { return params_; }

  void write_config(LayerConfigWriter& w) const override { w.put_f32(start_); }
  static std::unique_ptr<Layer> from_config(LayerConfigReader& r) {
    return std::make_unique<Shift>(r.get_f32("TestShift start"));
  }

 private:
  float start_;
  std::array<Param, 2> params_{Param("shift", {}), Param("seen", {}, Trainable::No)};
  Tensor y_;
};

// The same layer under a kind nobody registers.
class Unregistered final : public Layer {
 public:
  std::string_view kind() const override { return "TestUnregistered"; }
  std::string_view name_stem() const override { return "unregistered"; }
  Shape build(const Shape& input, Random&) override { return set_shapes(input, input); }
  const Tensor& forward(const Tensor& x) override { return x; }
  const Tensor& backward(const Tensor& dy) override { return dy; }
  void infer(const Tensor& x, Tensor& y) const override { y = x; }
};

Sequential shift_model() {
  Sequential m(Shape{8, 8, 1}, 4);
  m.add(Shift(0.25f));
  m.add(Flatten());
  m.add(Dense({.units = 4, .activation = Activation::Softmax}));
  m.compile(Adam({.learning_rate = 0.01f}));
  return m;
}

}  // namespace

TEST_CASE("A layer kind registered in user code saves, loads and predicts bit for bit", "[registry][model_file]") {
  register_layer<Shift>();
  CHECK(layer_registered("TestShift"));
  const std::vector<std::string> kinds = registered_layers();
  CHECK(std::is_sorted(kinds.begin(), kinds.end()));
  CHECK(std::find(kinds.begin(), kinds.end(), "Conv2D") != kinds.end());

  const testing::Quadrants d = testing::quadrants(64, 3);
  Sequential m = shift_model();
  m.fit(d.x, d.y, {.epochs = 1, .batch_size = 16, .verbose = 0});
  CHECK(m.layer(0).params()[1].value[0] == 64.0f);  // trained on 64 samples, in training mode

  const testing::TempDir dir;
  m.save(dir / "shift.loom");
  Sequential back = load_model(dir / "shift.loom");
  REQUIRE(back.layer(0).kind() == "TestShift");
  CHECK(back.layer(0).name() == "test_shift");
  CHECK(back.layer(0).params()[1].value[0] == 64.0f);  // the non-trainable parameter came back
  CHECK(testing::bitwise_equal(back.predict(d.x), m.predict(d.x)));
}

TEST_CASE("Saving an unregistered layer kind and loading an unknown one are clear errors", "[registry][model_file]") {
  Sequential m(Shape{4}, 1);
  m.add(Unregistered());
  m.add(Dense({.units = 2, .activation = Activation::Softmax}));
  m.compile(Adam());
  CHECK_THROWS_WITH(encode_model(m), Contains("unregistered (TestUnregistered) cannot be saved") &&
                                         Contains("register_layer"));

  register_layer<Shift>();
  std::vector<std::uint8_t> bytes = encode_model(shift_model());
  // A build that never registered the kind: rename it in the file, CRC fixed.
  const std::string from = "TestShift", to = "TestShifz";
  const auto at = std::search(bytes.begin(), bytes.end(), from.begin(), from.end());
  REQUIRE(at != bytes.end());
  std::copy(to.begin(), to.end(), at);
  const std::uint32_t c = crc32(std::span<const std::uint8_t>(bytes).first(bytes.size() - 4));
  std::memcpy(bytes.data() + bytes.size() - 4, &c, 4);
  CHECK_THROWS_AS(decode_model(bytes), DataError);
  CHECK_THROWS_WITH(decode_model(bytes), Contains("unknown layer kind \"TestShifz\"") && Contains("register_layer"));
}

TEST_CASE("The registry refuses to replace a built-in kind, an empty kind and a missing reader", "[registry]") {
  CHECK_THROWS_AS(register_layer("Conv2D", [](LayerConfigReader&) { return std::unique_ptr<Layer>(); }), UsageError);
  CHECK_THROWS_WITH(register_layer("Dense", [](LayerConfigReader&) { return std::unique_ptr<Layer>(); }),
                    Contains("built-in"));
  CHECK_THROWS_AS(register_layer("", [](LayerConfigReader&) { return std::unique_ptr<Layer>(); }), UsageError);
  CHECK_THROWS_AS(register_layer("TestNoReader", LayerReader()), UsageError);
  CHECK_FALSE(layer_registered("TestNoReader"));
}

TEST_CASE("Non-trainable parameters are saved but not optimised, and summaries count them apart", "[registry][sequential]") {
  Sequential m = shift_model();
  CHECK(m.param_count() == 1 + 1 + (64 * 4 + 4));
  CHECK(m.trainable_param_count() == 1 + (64 * 4 + 4));
  CHECK(m.params().size() == 3);   // shift, kernel, bias
  CHECK(m.weights().size() == 4);  // and seen
  const std::string s = m.summary_string();
  CHECK_THAT(s, Contains("Total params: 262"));
  CHECK_THAT(s, Contains("Trainable params: 261"));
  CHECK_THAT(s, Contains("Non-trainable params: 1"));
}

TEST_CASE("Sequential::forward runs every layer in the mode it is given, training by default", "[registry][sequential]") {
  Sequential m = shift_model();
  const testing::Quadrants d = testing::quadrants(8, 5);
  m.forward(d.x);
  CHECK(m.layer(0).mode() == Mode::Training);
  CHECK(m.layer(0).params()[1].value[0] == 8.0f);
  m.forward(d.x, Mode::Inference);
  CHECK(m.layer(0).mode() == Mode::Inference);
  CHECK(m.layer(2).mode() == Mode::Inference);
  CHECK(m.layer(0).params()[1].value[0] == 8.0f);  // inference leaves the statistic alone
  m.loss_and_backward(d.y);                        // and still backpropagates
  CHECK(m.params()[0]->grad.allFinite());
  m.fit(d.x, d.y, {.epochs = 1, .batch_size = 8, .verbose = 0});  // fit trains
  CHECK(m.layer(0).mode() == Mode::Training);
}

TEST_CASE("The gradient checker checks trainable parameters only and restores the rest", "[registry][gradient_check]") {
  Shift layer(0.5f);
  const testing::GradientReport r = testing::check_layer(layer, Shape{3, 3, 2});
  INFO(r.describe());
  REQUIRE(r.ok());
  REQUIRE(r.tensors.size() == 2);  // dx and shift: not seen
  CHECK(r.tensors[1].name == "shift");
  CHECK(layer.params()[1].value[0] == 0.0f);  // the training forwards' counting was undone
  CHECK(layer.mode() == Mode::Training);
  REQUIRE_LAYER_GRADIENTS(layer, Shape{3, 3, 2}, {.mode = Mode::Inference});
  CHECK(layer.mode() == Mode::Training);
}
