#pragma once
// The Layer interface: every layer is a forward/backward pair over batches.
//
// Shapes. A layer sees batches of N samples as rank-4 NHWC tensors (see
// tensor.hpp). `build` is given the per-sample input shape, checks it, returns
// the per-sample output shape and initialises the parameters.
//
// Contract.
// - forward(x): x is (N, in); returns y (N, out). Keeps what backward needs
//   (in buffers owned by the layer, reused across batches). The returned
//   reference stays valid until the next forward on this layer.
// - backward(dy): dy = dL/dy for the batch of the last forward. Returns
//   dx = dL/dx and *assigns* (never adds to) every parameter gradient dL/dw.
//   Gradients are derivatives of L itself, not their negative. Averaging over
//   the batch happens in the loss and nowhere else: a layer sums over samples.
//   A layer told set_needs_input_gradient(false) (Sequential does this for its
//   first layer: nothing consumes dL/d(input)) may skip computing dx and
//   return an empty tensor.
// - infer(x, y): inference only. const, keeps nothing, uses scratch space of
//   its own, so many threads may call it at once on one layer.
// - Softmax fusion: a layer whose output is softmax(z) reports
//   ends_with_softmax(), exposes z through logits() after forward, and takes
//   dL/dz directly in backward_from_logits(), so the loss can use the stable
//   fused gradient softmax(z) - onehot instead of dividing by probabilities.
//
// Thread safety: forward/backward mutate the layer (one thread at a time);
// infer and every other const member may be called from many threads at once.

#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "loom/error.hpp"
#include "loom/random.hpp"
#include "loom/tensor.hpp"

namespace loom {

/// A trainable parameter: its value and the gradient of the loss with respect
/// to it, both flat float vectors in row-major order of `shape`.
struct Param {
  std::string name;           // "kernel", "bias"
  std::vector<Index> shape;   // Keras order: conv kernel (KH, KW, C, F), dense kernel (in, out)
  Eigen::VectorXf value;
  Eigen::VectorXf grad;

  Param(std::string n, std::vector<Index> s) : name(std::move(n)), shape(std::move(s)) {
    Index size = 1;
    for (Index d : shape) size *= d;
    value = Eigen::VectorXf::Zero(size);
    grad = Eigen::VectorXf::Zero(size);
  }
  Index size() const { return value.size(); }
};

class Layer {
 public:
  virtual ~Layer() = default;

  /// The Keras class name, for summaries and model files: "Conv2D".
  virtual std::string_view kind() const = 0;
  /// The stem of automatic layer names: "conv2d" gives conv2d, conv2d_1, ...
  virtual std::string_view name_stem() const = 0;

  /// Checks the per-sample input shape, returns the output shape, and
  /// initialises the parameters from rng (Keras defaults). Throws ShapeError
  /// naming the layer and the shapes when the input does not fit.
  virtual Shape build(const Shape& input, Random& rng) = 0;

  virtual const Tensor& forward(const Tensor& x) = 0;
  virtual const Tensor& backward(const Tensor& dy) = 0;
  virtual void infer(const Tensor& x, Tensor& y) const = 0;

  virtual std::span<Param> params() { return {}; }
  virtual std::span<const Param> params() const { return {}; }

  virtual bool ends_with_softmax() const { return false; }
  virtual const Tensor& logits() const { throw UsageError(label() + ": layer does not end with softmax"); }
  virtual const Tensor& backward_from_logits(const Tensor&) {
    throw UsageError(label() + ": layer does not end with softmax");
  }

  const std::string& name() const { return name_; }
  void set_name(std::string n) { name_ = std::move(n); }
  const Shape& input_shape() const { return input_shape_; }
  const Shape& output_shape() const { return output_shape_; }
  bool built() const { return !output_shape_.empty(); }
  bool needs_input_gradient() const { return needs_input_gradient_; }
  void set_needs_input_gradient(bool needed) { needs_input_gradient_ = needed; }

  Index param_count() const {
    Index n = 0;
    for (const Param& p : params()) n += p.size();
    return n;
  }

 protected:
  /// Records the shapes once build has checked them; returns the output shape.
  Shape set_shapes(const Shape& in, const Shape& out) {
    input_shape_ = in;
    output_shape_ = out;
    return out;
  }
  /// Throws unless x holds samples of the built input shape.
  void check_input(const Tensor& x) const {
    if (!holds(x, input_shape_))
      throw ShapeError(label() + ": expected input of shape " +
                       input_shape_.to_string() + ", got a tensor of dimensions " + dims_string(x));
  }
  /// "dense_1 (Dense)", the way errors name a layer.
  std::string label() const { return (name_.empty() ? std::string(name_stem()) : name_) + " (" + std::string(kind()) + ")"; }

 private:
  std::string name_;
  Shape input_shape_;
  Shape output_shape_;
  bool needs_input_gradient_ = true;
};

}  // namespace loom
