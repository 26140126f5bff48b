#pragma once
// The Layer interface: every layer is a forward/backward pair over batches.
//
// Shapes. A layer sees batches of N samples as rank-4 NHWC tensors (see
// tensor.hpp). `build` is given the per-sample input shape, checks it, returns
// the per-sample output shape and initialises the parameters.
//
// Contract.
// - forward(x): x is (N, in); returns y (N, out). Keeps what backward needs
//   (in buffers owned by the layer, reused across batches), or reads it again
//   from x: the caller keeps x alive and unchanged until the layer's
//   backward, as Sequential, composite layers and fit do (and PyTorch's
//   autograd asks of its saved tensors). BatchNormalization and im2col
//   convolutions read x again rather than keep a copy of what they made from
//   it (x_hat, patches): less memory, and a pass less over it; so do Dense
//   and a direct convolution whose windows need no padding. The returned
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
// - Modes: forward runs in the layer's mode(), Training unless set_mode says
//   otherwise (Sequential::forward sets it on every layer; fit trains, a
//   custom loop chooses). A layer that behaves differently when training
//   (BatchNormalization, Dropout) reads mode() in forward; infer is always
//   inference. set_mode reaches a composite layer's children.
// - Parameters: params() are this layer's own; a composite layer (Residual)
//   holds its sublayers in children(), and for_each_param visits both, depth
//   first. A Param that is not trainable (BatchNorm's moving statistics) is
//   saved and loaded but never given to the optimizer.
// - Randomness: a layer that draws random numbers in forward (Dropout) owns a
//   Random seeded from the model's generator at build, and returns it from
//   generator(), so a caller can save it or replay the same draws (the
//   gradient checker does).
// - Saving: write_config writes the layer's options; the layer registry
//   (layer_registry.hpp) maps kind() to the function that reads them back.
// - Softmax fusion: a layer whose output is softmax(z) reports
//   ends_with_softmax(), exposes z through logits() after forward, and takes
//   dL/dz directly in backward_from_logits(), so the loss can use the stable
//   fused gradient softmax(z) - onehot instead of dividing by probabilities.
//
// Thread safety: forward/backward mutate the layer (one thread at a time);
// infer and every other const member may be called from many threads at once.

#include <concepts>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "loom/elementwise.hpp"
#include "loom/error.hpp"
#include "loom/random.hpp"
#include "loom/tensor.hpp"

namespace loom {

class LayerConfigWriter;  // io/layer_config.hpp
class MaxPool2D;          // layers/maxpool2d.hpp

/// How forward behaves: Training (batch statistics, dropout) or Inference.
enum class Mode { Training, Inference };

inline std::string_view to_string(Mode m) { return m == Mode::Training ? "training" : "inference"; }

enum class Trainable : bool { No = false, Yes = true };

/// A parameter: its value and the gradient of the loss with respect to it,
/// both flat float vectors in row-major order of `shape`. A non-trainable one
/// (Keras's non-trainable weights: BatchNorm's moving mean and variance) is
/// updated by its layer's forward, saved with the model, and has no gradient.
struct Param {
  std::string name;           // "kernel", "bias"
  std::vector<Index> shape;   // Keras order: conv kernel (KH, KW, C, F), dense kernel (in, out)
  Eigen::VectorXf value;
  Eigen::VectorXf grad;       // empty when not trainable
  bool trainable = true;
  // Whether weight decay applies (optimizers' weight_decay option). Unset:
  // parameters of rank 2 and more decay (Conv2D and Dense kernels), rank-1
  // ones do not (biases, BatchNormalization's gamma and beta), as the usual
  // AdamW recipe has it. Set it to override, before or after compile; it is
  // part of the program that builds the model, not saved in model files.
  std::optional<bool> decay;

  Param(std::string n, std::vector<Index> s, Trainable t = Trainable::Yes)
      : name(std::move(n)), shape(std::move(s)), trainable(t == Trainable::Yes) {
    Index size = 1;
    for (Index d : shape) size *= d;
    value = Eigen::VectorXf::Zero(size);
    if (trainable) grad = Eigen::VectorXf::Zero(size);
  }
  Index size() const { return value.size(); }
  bool decays() const { return decay.value_or(shape.size() >= 2); }
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
  /// backward(dy), with dL/dx assigned to or added onto `dx` instead of
  /// returned: a composite whose paths read one input (Residual) sums their
  /// gradients there without a pass of its own. Parameter gradients are
  /// assigned, as by backward. This default copies or adds backward's dx;
  /// convolutions, whose backward zeroes dx and adds each patch onto it,
  /// write there directly (and with Add skip the zeroing).
  virtual void backward_into(const Tensor& dy, Tensor& dx, GradientWrite how) { write_gradient(backward(dy), dx, how); }
  virtual void infer(const Tensor& x, Tensor& y) const = 0;

  /// This layer's own parameters (not its children's: see for_each_param).
  virtual std::span<Param> params() { return {}; }
  virtual std::span<const Param> params() const { return {}; }

  /// The sublayers of a composite layer, in the order they are saved.
  virtual std::span<const std::unique_ptr<Layer>> children() const { return {}; }

  /// The generator forward draws from, for layers that draw (Dropout); null otherwise.
  virtual Random* generator() { return nullptr; }

  /// Writes the layer's options for a model file; layers without options write nothing.
  /// The registry's reader for kind() must read exactly these bytes back.
  virtual void write_config(LayerConfigWriter&) const {}

  /// Asks the layer to apply, while training, the ReLU layer that follows it
  /// (one pass over the map instead of two, the same results); returns
  /// whether it will, and the ReLU then passes values through
  /// (chain::fuse_relus). Layers that cannot answer no.
  virtual bool take_following_relu() { return false; }

  /// Asks the layer to pool, while training, for the MaxPool2D that follows
  /// it (one pass instead of a map written, read back and pooled; the same
  /// results); returns whether it may, and the pool then passes on an input
  /// that comes pooled (chain::fuse_max_pools). Layers that cannot answer no.
  virtual bool take_following_max_pool(const MaxPool2D&) { return false; }

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

  /// The mode forward runs in; set on this layer and its children.
  Mode mode() const { return mode_; }
  void set_mode(Mode m) {
    mode_ = m;
    for (const auto& c : children()) c->set_mode(m);
  }

  /// Parameters of this layer and its children: all, trainable, or not.
  Index param_count() const { return count_params([](const Param&) { return true; }); }
  Index trainable_param_count() const { return count_params([](const Param& p) { return p.trainable; }); }

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
  template <typename Pred>
  Index count_params(Pred&& pred) const {
    Index n = 0;
    for (const Param& p : params())
      if (pred(p)) n += p.size();
    for (const auto& c : children()) n += c->count_params(pred);
    return n;
  }

  std::string name_;
  Mode mode_ = Mode::Training;
  Shape input_shape_;
  Shape output_shape_;
  bool needs_input_gradient_ = true;
};

/// fn(owner, param) for every parameter of layer and of its children, depth
/// first, in the order model files store them.
template <typename Fn>
void for_each_param(Layer& layer, Fn&& fn) {
  for (Param& p : layer.params()) fn(layer, p);
  for (const auto& c : layer.children()) for_each_param(*c, fn);
}
template <typename Fn>
void for_each_param(const Layer& layer, Fn&& fn) {
  for (const Param& p : layer.params()) fn(layer, p);
  for (const auto& c : layer.children()) for_each_param(static_cast<const Layer&>(*c), fn);
}

/// fn(layer, depth) for layer (at `depth`) and every layer inside it, depth
/// first, each sublayer one deeper than its parent (summary() indents by it).
template <typename L, typename Fn>
  requires std::same_as<std::remove_const_t<L>, Layer>
void for_each_nested(L& layer, Fn&& fn, int depth = 0) {
  fn(layer, depth);
  for (const auto& c : layer.children()) for_each_nested(static_cast<L&>(*c), fn, depth + 1);
}

/// fn(layer) for layer and every layer inside it, depth first.
template <typename L, typename Fn>
  requires std::same_as<std::remove_const_t<L>, Layer>
void for_each_layer(L& layer, Fn&& fn) {
  for_each_nested(layer, [&](L& l, int) { fn(l); });
}

}  // namespace loom
