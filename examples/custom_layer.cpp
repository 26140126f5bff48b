// A layer defined in user code, used like a built-in one: PReLU, a ReLU whose
// slope for negative inputs is learned per channel (He et al. 2015; Keras's
// PReLU with shared_axes=[1, 2], PyTorch's nn.PReLU(num_parameters=C)).
//
// What a layer of your own needs (loom/layer.hpp has the whole contract):
//   - kind() and name_stem(); build(), which checks the input shape, creates
//     the parameters and returns the output shape;
//   - forward() (keeps what backward needs, or reads it from its input
//     again, which the caller keeps until backward), backward() (assigns every
//     parameter gradient and returns dx), infer() (const, keeps nothing);
//   - to be saved: write_config() and a static from_config(), and one call to
//     loom::register_layer<YourLayer>() before a model holding it is loaded.
// Then check its gradients with loom::testing::check_layer before you train it.
//
// This program checks PReLU's gradients, trains the Fashion-MNIST CNN with
// PReLU in place of ReLU, saves the model, loads it back and checks that the
// loaded model predicts bit for bit as the trained one. Same flags and JSON
// line as fashion_mnist_cnn; --limit 6000 --epochs 1 gives a quick run.

#include <array>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <memory>

#include "loom/loom.hpp"
#include "loom/testing/gradient_check.hpp"
#include "loom/training/example_program.hpp"

namespace {

using namespace loom;

//   y = x            where x > 0
//   y = alpha_c x    elsewhere, alpha_c one learned slope per channel c
// Backward, for dy:
//   dx = dy or alpha_c dy (as the forward chose)
//   dalpha_c = sum over the batch and positions with x <= 0 of dy x
class PReLU final : public Layer {
 public:
  static constexpr std::string_view kKind = "PReLU";

  explicit PReLU(float initial_alpha = 0.25f) : initial_alpha_(initial_alpha) {
    if (!std::isfinite(initial_alpha)) throw UsageError("PReLU: the initial slope must be finite");
  }

  std::string_view kind() const override { return kKind; }
  std::string_view name_stem() const override { return "p_re_lu"; }

  Shape build(const Shape& input, Random&) override {
    params_[0] = Param("alpha", {input.channels()});
    params_[0].value.setConstant(initial_alpha_);
    return set_shapes(input, input);
  }

  const Tensor& forward(const Tensor& x) override {
    x_ = x;  // backward needs the input's signs and values
    infer(x, y_);
    return y_;
  }

  const Tensor& backward(const Tensor& dy) override {
    const Index c = input_shape().channels(), rows = dy.size() / c;
    const Eigen::VectorXf& alpha = params_[0].value;
    Eigen::VectorXf& dalpha = params_[0].grad;
    dalpha.setZero();  // assigned by the sum below, never accumulated across calls
    dx_.resize(dy.dimensions());
    for (Index r = 0; r < rows; ++r)
      for (Index ch = 0; ch < c; ++ch) {
        const Index i = r * c + ch;
        const float x = x_.data()[i], g = dy.data()[i];
        if (x > 0.0f) {
          dx_.data()[i] = g;
        } else {
          dx_.data()[i] = alpha[ch] * g;
          dalpha[ch] += g * x;
        }
      }
    return dx_;
  }

  void infer(const Tensor& x, Tensor& y) const override {
    check_input(x);
    const Index c = input_shape().channels(), rows = x.size() / c;
    const Eigen::VectorXf& alpha = params_[0].value;
    y.resize(x.dimensions());
    for (Index r = 0; r < rows; ++r)
      for (Index ch = 0; ch < c; ++ch) {
        const float v = x.data()[r * c + ch];
        y.data()[r * c + ch] = v > 0.0f ? v : alpha[ch] * v;
      }
  }

  std::span<Param> params() override { return params_; }
  std::span<const Param> params() const override { return params_; }

  // The model file keeps the layer's options; the slopes are its weights.
  void write_config(LayerConfigWriter& w) const override { w.put_f32(initial_alpha_); }
  static std::unique_ptr<Layer> from_config(LayerConfigReader& r) {
    return std::make_unique<PReLU>(r.get_f32("PReLU initial slope"));
  }

 private:
  float initial_alpha_;
  std::array<Param, 1> params_{Param("alpha", {})};
  Tensor x_, y_, dx_;
};

Sequential prelu_cnn(std::uint64_t seed) {
  Sequential model(Shape{28, 28, 1}, seed);
  model.add(Conv2D({.filters = 32, .kernel = 3}));
  model.add(PReLU());
  model.add(MaxPool2D({.pool = 2}));
  model.add(Conv2D({.filters = 64, .kernel = 3}));
  model.add(PReLU());
  model.add(MaxPool2D({.pool = 2}));
  model.add(Flatten());
  model.add(Dense({.units = 128}));
  model.add(PReLU());
  model.add(Dense({.units = 10, .activation = Activation::Softmax}));
  model.compile(Adam(), SparseCategoricalCrossentropy(), {"accuracy"});
  return model;
}

}  // namespace

int main(int argc, char** argv) {
  // Saving needs nothing more; loading finds the kind here.
  loom::register_layer<PReLU>();

  // The layer's backward against finite differences, before any training.
  PReLU probe(0.25f);
  const loom::testing::GradientReport check = loom::testing::check_layer(probe, loom::Shape{6, 6, 4});
  std::cout << "PReLU gradient check: " << (check.ok() ? "passed" : "FAILED") << ", worst error/tolerance "
            << check.worst_ratio() << "\n";
  if (!check.ok()) {
    std::cerr << check.describe();
    return 1;
  }

  return loom::cli::run_fashion_mnist_example(
      argc, argv,
      {.program = "custom_layer",
       .description = "Trains the Fashion-MNIST CNN with PReLU, a layer defined in this program, saves and reloads it.",
       .round_trip = true},
      prelu_cnn);
}
