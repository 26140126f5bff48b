#pragma once
// The shared frame of layers with a Keras `activation` option (Conv2D, Dense):
// a linear part z = f(x; w) implemented by the subclass, followed by one of the
// activations in activation.hpp. Forward, backward and inference of the
// activation live here once, so fusing it is never a second implementation.
//
//   forward:  z = linear(x);  y = act(z)      (ReLU in place: y is z's buffer)
//   backward: dz = act'(y) . dy;  dx = linear_backward(dz)
//
// With a softmax activation the layer offers logits() = z and
// backward_from_logits(dz), for the loss's fused gradient.

#include "loom/activation.hpp"
#include "loom/layer.hpp"

namespace loom {

class ActivatedLayer : public Layer {
 public:
  explicit ActivatedLayer(Activation a) : activation_(a) {}

  Activation activation() const { return activation_; }

  const Tensor& forward(const Tensor& x) final {
    check_input(x);
    linear_forward(x, z_);
    if (activation_ == Activation::Softmax) {
      activate(activation_, z_, y_);
      return y_;
    }
    activate(activation_, z_, z_);  // None or ReLU, in place
    return z_;
  }

  const Tensor& backward(const Tensor& dy) final {
    if (activation_ == Activation::None) return linear_backward(dy);
    activate_backward(activation_, activation_ == Activation::Softmax ? y_ : z_, dy, dz_);
    return linear_backward(dz_);
  }

  void infer(const Tensor& x, Tensor& y) const final {
    check_input(x);
    linear_infer(x, y);
    activate(activation_, y, y);  // every activation here may run in place
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
  /// z = linear(x) for training: may keep what linear_backward needs.
  virtual void linear_forward(const Tensor& x, Tensor& z) = 0;
  /// Given dz = dL/dz of the last forward: assigns parameter gradients, returns dL/dx.
  virtual const Tensor& linear_backward(const Tensor& dz) = 0;
  /// z = linear(x) for inference: const, keeps nothing.
  virtual void linear_infer(const Tensor& x, Tensor& z) const = 0;

 private:
  Activation activation_;
  Tensor z_;   // (N, out) pre-activation; after ReLU, the activation itself
  Tensor y_;   // (N, out) softmax output
  Tensor dz_;  // (N, out) dL/dz
};

}  // namespace loom
