#pragma once
// The shared frame of layers with a Keras `activation` option (Conv2D, Dense):
// a linear part z = f(x; w) implemented by the subclass, followed by one of the
// activations in activation.hpp. Forward, backward and inference of the
// activation live here once, so fusing it is never a second implementation.
//
//   forward:  z = linear(x);  y = act(z)      (ReLU in place: y is z's buffer,
//                                              applied by the linear part while
//                                              its output is still in cache)
//   backward: dz = act'(y) . dy;  dx = linear_backward(dz)
//             (ReLU: linear_backward_relu(dy, y), which a subclass may
//             override to mask dy while its own pass reads it)
//   backward_into: the same dz; dx written or added by linear_backward_into
//
// With a softmax activation the layer offers logits() = z and
// backward_from_logits(dz), for the loss's fused gradient.
//
// Thread safety: as every Layer (layer.hpp): infer from many threads, forward/backward from one.

#include "loom/activation.hpp"
#include "loom/layer.hpp"

namespace loom {

class ActivatedLayer : public Layer {
 public:
  explicit ActivatedLayer(Activation a) : activation_(a) {}

  Activation activation() const { return activation_; }

  const Tensor& forward(const Tensor& x) final {
    check_input(x);
    linear_forward(x, z_, elementwise());
    if (activation_ != Activation::Softmax) return z_;
    activate(activation_, z_, y_);  // z_ stays: the logits
    return y_;
  }

  const Tensor& backward(const Tensor& dy) final {
    check_output_gradient(dy);
    if (activation_ == Activation::None) return linear_backward(dy);
    if (activation_ == Activation::ReLU) return linear_backward_relu(dy, z_);
    return linear_backward(activation_gradient(dy));
  }

  void backward_into(const Tensor& dy, Tensor& dx, GradientWrite how) final {
    check_output_gradient(dy);
    linear_backward_into(activation_ == Activation::None ? dy : activation_gradient(dy), dx, how);
  }

  void infer(const Tensor& x, Tensor& y) const final {
    check_input(x);
    linear_infer(x, y, elementwise());
    if (activation_ == Activation::Softmax) activate(activation_, y, y);
  }

  bool ends_with_softmax() const final { return activation_ == Activation::Softmax; }
  const Tensor& logits() const final {
    if (activation_ != Activation::Softmax) return Layer::logits();
    return z_;
  }
  const Tensor& backward_from_logits(const Tensor& dz) final {
    if (activation_ != Activation::Softmax) return Layer::backward_from_logits(dz);
    return linear_backward(dz);
  }

 protected:
  /// z = act(linear(x)) for training, where act is None or ReLU (applied in
  /// place with activate(), see elementwise()); may keep what linear_backward needs.
  virtual void linear_forward(const Tensor& x, Tensor& z, Activation act) = 0;
  /// Given dz = dL/dz of the last forward: assigns parameter gradients, returns dL/dx.
  virtual const Tensor& linear_backward(const Tensor& dz) = 0;
  /// linear_backward(dz) for dz = dy where the ReLU output y > 0, else 0. This
  /// one makes dz in a pass of its own; a layer whose backward can apply the
  /// mask while it reads dy anyway overrides it and saves that pass.
  virtual const Tensor& linear_backward_relu(const Tensor& dy, const Tensor& y) {
    activate_backward(Activation::ReLU, y, dy, dz_);
    return linear_backward(dz_);
  }
  /// linear_backward(dz), with dx assigned to or added onto `dx`
  /// (Layer::backward_into). This one copies or adds linear_backward's
  /// result; a layer that can write there directly overrides it.
  virtual void linear_backward_into(const Tensor& dz, Tensor& dx, GradientWrite how) {
    write_gradient(linear_backward(dz), dx, how);
  }
  /// z = act(linear(x)) for inference: const, keeps nothing.
  virtual void linear_infer(const Tensor& x, Tensor& z, Activation act) const = 0;

 private:
  // The kernels read dy as the last forward's output: anything else is refused, not read past its end.
  void check_output_gradient(const Tensor& dy) const {
    if (dy.dimensions() != z_.dimensions())
      throw ShapeError(label() + ": backward expects dy of the last forward's dimensions " + dims_string(z_) +
                       ", got " + dims_string(dy));
  }

  // dz = act'(y) . dy, in dz_ (a ReLU's output is z_ itself).
  const Tensor& activation_gradient(const Tensor& dy) {
    activate_backward(activation_, activation_ == Activation::ReLU ? z_ : y_, dy, dz_);
    return dz_;
  }

  // The part of the activation the linear pass applies itself: ReLU is
  // elementwise and runs in place; softmax needs whole rows and the logits kept.
  Activation elementwise() const { return activation_ == Activation::ReLU ? Activation::ReLU : Activation::None; }

  Activation activation_;
  Tensor z_;   // (N, out) pre-activation; after ReLU, the activation itself
  Tensor y_;   // (N, out) softmax output
  Tensor dz_;  // (N, out) dL/dz
};

}  // namespace loom
