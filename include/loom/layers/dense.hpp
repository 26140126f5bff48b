#pragma once
// Dense: a fully connected layer on flat features.
//
//   N  batch size      I  input features      O  units
//   x      (N, 1, 1, I)   input, seen as the matrix X (N, I)
//   kernel (I, O)         W, Glorot-uniform initialised
//   bias   (O)            b, zeros
//   z      (N, 1, 1, O)   Z = X W + b, then the optional activation
//
// Backward, for dZ = dL/dZ:
//   dW = X^T dZ           (I, O)   sums over the batch
//   db = 1^T dZ           (O)
//   dX = dZ W^T           (N, I)
//
// Thread safety: as every Layer (layer.hpp): infer from many threads, forward/backward from one.

#include <array>
#include <cmath>
#include <string>

#include "loom/io/layer_config.hpp"
#include "loom/layers/activated_layer.hpp"
#include "loom/layers/init.hpp"
#include "loom/gemm.hpp"

namespace loom {

struct DenseOptions {
  Index units = 0;
  Activation activation = Activation::None;
};

class Dense final : public ActivatedLayer {
 public:
  explicit Dense(DenseOptions o) : ActivatedLayer(o.activation), units_(o.units) {
    if (o.units <= 0) throw UsageError("Dense: units must be positive, got " + std::to_string(o.units));
  }

  static constexpr std::string_view kKind = "Dense";
  std::string_view kind() const override { return kKind; }
  std::string_view name_stem() const override { return "dense"; }
  Index units() const { return units_; }

  Shape build(const Shape& input, Random& rng) override {
    if (input.rank() != 1)
      throw ShapeError(label() + ": expects flat input (features), got " + input.to_string() +
                       "; add a Flatten layer before it");
    const Index in = input[0];
    params_ = {Param("kernel", {in, units_}), Param("bias", {units_})};
    glorot_uniform(params_[0].value, in, units_, rng);
    return set_shapes(input, Shape{units_});
  }

  std::span<Param> params() override { return params_; }
  std::span<const Param> params() const override { return params_; }

  void write_config(LayerConfigWriter& w) const override {
    w.put_dim(units_);
    w.put_activation(activation());
  }
  static std::unique_ptr<Layer> from_config(LayerConfigReader& r) {
    DenseOptions o;
    o.units = r.get_dim("Dense units");
    o.activation = r.get_activation("Dense activation");
    r.claim_params({r.input_shape().size()}, o.units);
    return std::make_unique<Dense>(o);
  }

 protected:
  void linear_forward(const Tensor& x, Tensor& z, Activation act) override {
    x_ = &x;  // dW reads it again: the caller keeps it (layer.hpp), a copy was a pass over it
    linear_infer(x, z, act);
  }

  void linear_infer(const Tensor& x, Tensor& z, Activation act) const override {
    const Index n = x.dimension(0), in = input_shape()[0];
    resize_batch(z, n, output_shape());
    // Bias and ReLU in the product's epilogue; any other activation after it.
    const bool relu = act == Activation::ReLU;
    gemm::parallel_multiply(gemm::mutable_view(as_matrix(z, n, units_)), gemm::view(as_matrix(x, n, in)),
                            gemm::view(kernel()), {false, bias().data(), relu});
    if (!relu) activate(act, z, z);
  }

  const Tensor& linear_backward(const Tensor& dz) override {
    const Index n = dz.dimension(0), in = input_shape()[0];
    if (!x_ || x_->size() != n * in)
      throw UsageError(label() + ": backward needs the input of the last forward, kept unchanged by the caller (" +
                       std::to_string(x_ ? x_->size() : 0) + " values, expected " + std::to_string(n * in) + ")");
    const ConstMatrixMap dZ = as_matrix(dz, n, units_);
    const ConstMatrixMap X = as_matrix(*x_, n, in);
    gemm::parallel_multiply(gemm::mutable_view(MatrixMap(params_[0].grad.data(), in, units_)),
                            gemm::view(X.transpose()), gemm::view(dZ));
    params_[1].grad.noalias() = dZ.colwise().sum().transpose();
    if (!needs_input_gradient()) return dx_;  // first layer: nobody wants dx
    resize_batch(dx_, n, input_shape());
    gemm::parallel_multiply(gemm::mutable_view(as_matrix(dx_, n, in)), gemm::view(dZ),
                            gemm::view(kernel().transpose()));
    return dx_;
  }

 private:
  ConstMatrixMap kernel() const { return {params_[0].value.data(), input_shape()[0], units_}; }
  const Eigen::VectorXf& bias() const { return params_[1].value; }

  Index units_;
  std::array<Param, 2> params_{Param("kernel", {}), Param("bias", {})};
  const Tensor* x_ = nullptr;  // (N, 1, 1, I) the input of the last forward, kept by the caller (layer.hpp)
  Tensor dx_;  // (N, 1, 1, I)
};

}  // namespace loom
