#pragma once
// Conv2D: 2-D convolution (cross-correlation, as every framework) over NHWC.
// The layer holds the options, the parameters and the activation; the
// arithmetic is the convolution engine's (include/loom/conv/): one algorithm
// per layer, chosen from its shapes by conv::choose_algorithm or forced with
// the `algorithm` option.
//
//   x      (N, H, W, C)
//   kernel (KH, KW, C, F)   Glorot-uniform
//   bias   (F)              zeros
//   z      (N, OH, OW, F)   z = conv(x, kernel) + bias, then the activation
// Backward, for dz = dL/dz: dkernel and dx from the engine, dbias the sum of
// dz over the batch and the pixels (the direct and Winograd algorithms sum
// it, and apply ReLU's mask, in a pass of their own).
//
// Thread safety: as every Layer (layer.hpp): infer from many threads, forward/backward from one.

#include <array>
#include <string>

#include "loom/conv/conv_algorithm.hpp"
#include "loom/conv/direct_conv.hpp"
#include "loom/conv/im2col_conv.hpp"
#include "loom/conv/winograd_conv.hpp"
#include "loom/io/layer_config.hpp"
#include "loom/layers/activated_layer.hpp"
#include "loom/layers/init.hpp"
#include "loom/layers/maxpool2d.hpp"
#include "loom/layers/window.hpp"
#include "loom/parallel.hpp"

namespace loom {

struct Conv2DOptions {
  Index filters = 0;
  Size2 kernel = 0;
  Size2 strides = 1;
  Padding padding = Padding::Valid;
  Activation activation = Activation::None;
  /// Auto: the engine's rule (conv/conv_algorithm.hpp); anything else forces
  /// that algorithm, and a layer it cannot compute is a UsageError.
  ConvAlgorithm algorithm = ConvAlgorithm::Auto;
};

class Conv2D final : public ActivatedLayer {
 public:
  explicit Conv2D(Conv2DOptions o) : ActivatedLayer(o.activation), o_(o) {
    if (o.filters <= 0) throw UsageError("Conv2D: filters must be positive, got " + std::to_string(o.filters));
    if (o.kernel.h <= 0 || o.kernel.w <= 0)
      throw UsageError("Conv2D: kernel must be positive, got " + o.kernel.to_string());
    if (o.strides.h <= 0 || o.strides.w <= 0)
      throw UsageError("Conv2D: strides must be positive, got " + o.strides.to_string());
  }

  static constexpr std::string_view kKind = "Conv2D";
  std::string_view kind() const override { return kKind; }
  std::string_view name_stem() const override { return "conv2d"; }
  const Conv2DOptions& options() const { return o_; }
  /// The per-sample shapes the engine computes with (valid once built).
  const conv::ConvGeometry& geometry() const { return g_; }

  /// The algorithm this layer computes with: the forced one, or the rule's
  /// choice for its shapes and for whether its input gradient is wanted.
  ConvAlgorithm algorithm() const { return conv::choose_algorithm(g_, needs_input_gradient(), o_.algorithm, label()); }

  /// Forces an algorithm (or Auto) on a built layer, e.g. one loaded from a
  /// model file, which records the architecture but not how it is computed.
  /// A UsageError when the algorithm cannot compute this layer.
  void set_algorithm(ConvAlgorithm a) {
    const ConvAlgorithm before = o_.algorithm;
    o_.algorithm = a;
    try {
      if (built() && a != ConvAlgorithm::Direct) (void)algorithm();
    } catch (...) {
      o_.algorithm = before;
      throw;
    }
  }

  Shape build(const Shape& input, Random& rng) override {
    if (input.rank() != 3)
      throw ShapeError(label() + ": expects images (height, width, channels), got " + input.to_string());
    const WindowAxis y = window_axis(input[0], o_.kernel.h, o_.strides.h, o_.padding);
    const WindowAxis x = window_axis(input[1], o_.kernel.w, o_.strides.w, o_.padding);
    if (y.out <= 0 || x.out <= 0)
      throw ShapeError(label() + ": kernel " + o_.kernel.to_string() + " does not fit input " + input.to_string() +
                       " with valid padding");
    g_ = {.h = input[0], .w = input[1], .c = input[2], .kh = o_.kernel.h, .kw = o_.kernel.w, .f = o_.filters,
          .sh = o_.strides.h, .sw = o_.strides.w, .pad_top = y.pad_before, .pad_left = x.pad_before,
          .oh = y.out, .ow = x.out};
    if (o_.algorithm != ConvAlgorithm::Auto && o_.algorithm != ConvAlgorithm::Direct)
      (void)algorithm();  // a forced algorithm that cannot fit the shapes fails here, at add()
    params_ = {Param("kernel", {o_.kernel.h, o_.kernel.w, g_.c, o_.filters}), Param("bias", {o_.filters})};
    glorot_uniform(params_[0].value, g_.patch(), o_.kernel.h * o_.kernel.w * o_.filters, rng);
    return set_shapes(input, Shape{g_.oh, g_.ow, o_.filters});
  }

  std::span<Param> params() override { return params_; }
  std::span<const Param> params() const override { return params_; }

  /// infer, then `normalize` (an inference-mode BatchNormalization's map:
  /// BatchNormalization::inference_map) and, with relu, max(0, .), all in the
  /// engine's output stage: the values of infer followed by the
  /// BatchNormalization's (and the ReLU's) infer, bit for bit, without their
  /// passes over y. For a layer without activation (chain::infer_step checks).
  void infer_normalized(const Tensor& x, Tensor& y, const ChannelNormalization& normalize, bool relu) const {
    check_input(x);
    if (activation() != Activation::None)
      throw UsageError(label() + ": infer_normalized needs a layer without activation");
    engine_infer(x, y, relu ? Activation::ReLU : Activation::None, normalize);
  }

  /// Pools for the MaxPool2D after it while training, when this layer has
  /// ReLU and the pool's 2x2 windows at stride 2 take its output: forward then
  /// returns the pooled map, computed in the same pass (the direct
  /// algorithm's DirectConv::forward_pooled, Winograd's output stage,
  /// WinogradConv::forward_pooled), whenever the algorithm of the moment can
  /// (pools_with), and the full map otherwise, which the pool then pools
  /// itself. Asked by the container (chain::fuse_max_pools), never by hand.
  bool take_following_max_pool(const MaxPool2D& pool) override {
    pool_follows_ = built() && activation() == Activation::ReLU && pool.pools_halves() &&
                    pool.input_shape() == output_shape() &&
                    (pools_with(ConvAlgorithm::Direct) || pools_with(ConvAlgorithm::Winograd4));
    return pool_follows_;
  }

  /// Whether this layer pools for the MaxPool2D after it now: taken, on, and
  /// an algorithm that can (forward then returns the pooled map; a chain's
  /// inference calls infer_pooled, chain::infer_step).
  bool pools_following() const { return pool_follows_ && pool_fusion_ && pools_with(algorithm()); }

  /// infer, then the following 2x2 MaxPool2D's infer, in one pass: their
  /// values, bit for bit, without the full map. Only when pools_following().
  void infer_pooled(const Tensor& x, Tensor& y) const {
    check_input(x);
    if (!pools_following()) throw UsageError(label() + ": infer_pooled needs a layer that pools for the pool after it");
    engine_infer_pooled(x, y, {});
  }

  /// Whether infer_normalized_pooled can compute this layer and `pool`: a
  /// layer without activation whose algorithm can pool, and a 2x2 pool at
  /// stride 2 of its output's shape (a BatchNormalization and a ReLU between
  /// them keep it). The inference of a convolutional block conv - batch
  /// normalization - ReLU - max pool as one step (chain::infer_step).
  bool pools_normalized(const MaxPool2D& pool) const {
    return built() && activation() == Activation::None && pool_fusion_ && pool.pools_halves() &&
           pool.input_shape() == output_shape() && pools_with(algorithm());
  }

  /// infer_normalized with ReLU, then the 2x2 pool, in one pass: the values
  /// of the four layers run one by one, bit for bit, without the full map.
  void infer_normalized_pooled(const Tensor& x, Tensor& y, const ChannelNormalization& normalize) const {
    check_input(x);
    if (activation() != Activation::None || !pools_with(algorithm()))
      throw UsageError(label() + ": infer_normalized_pooled needs a layer without activation whose algorithm pools");
    engine_infer_pooled(x, y, normalize);
  }

  /// While set (not null), forward and backward_into call (*hook)(first,
  /// end) on each range of samples as soon as it is done, on the thread that
  /// computed it, every sample once: im2col chunk by chunk, while the
  /// chunk's input and dx are in that thread's cache; the other algorithms
  /// once for the whole batch, after the pass. What a Residual block's pooled
  /// projection rides on (residual.hpp); the caller clears it before the hook
  /// goes out of scope.
  void set_sample_hook(const conv::SampleHook* hook) { sample_hook_ = hook; }

  /// Whether forward may pool for the following MaxPool2D (on by default
  /// once taken): off, the layer and the pool run apart, e.g. to time this
  /// layer alone (bench/layer_cases.hpp). The results are the same either way.
  void set_pool_fusion(bool on) { pool_fusion_ = on; }

  // The algorithm is how the layer computes, not what: it is not saved.
  void write_config(LayerConfigWriter& w) const override {
    w.put_dim(o_.filters);
    w.put_size2(o_.kernel);
    w.put_size2(o_.strides);
    w.put_padding(o_.padding);
    w.put_activation(activation());
  }
  static std::unique_ptr<Layer> from_config(LayerConfigReader& r) {
    Conv2DOptions o;
    o.filters = r.get_dim("Conv2D filters");
    o.kernel = r.get_size2("Conv2D kernel");
    o.strides = r.get_size2("Conv2D strides");
    o.padding = r.get_padding("Conv2D padding");
    o.activation = r.get_activation("Conv2D activation");
    r.claim_params({o.kernel.h, o.kernel.w, r.input_shape().channels()}, o.filters);
    return std::make_unique<Conv2D>(o);
  }

 protected:
  void linear_forward(const Tensor& x, Tensor& z, Activation act) override {
    pooled_ = act == Activation::ReLU && pools_following();
    const ConvAlgorithm a = algorithm();
    forward_algorithm_ = a;
    if (pooled_) {
      switch (a) {
        case ConvAlgorithm::Winograd2: winograd2_.forward_pooled(g_, weights(), x, z); break;
        case ConvAlgorithm::Winograd4: winograd4_.forward_pooled(g_, weights(), x, z); break;
        default: direct_.forward_pooled(g_, weights(), x, z); break;
      }
    } else {
      resize_batch(z, x.dimension(0), output_shape());
      switch (a) {
        case ConvAlgorithm::Direct: direct_.forward(g_, weights(), x, z, act); break;
        case ConvAlgorithm::Winograd2: winograd2_.forward(g_, weights(), x, z, act); break;
        case ConvAlgorithm::Winograd4: winograd4_.forward(g_, weights(), x, z, act); break;
        default: im2col_.forward(g_, weights(), x, z, act, sample_hook_); break;
      }
    }
    hook_whole_batch(a, x.dimension(0));
  }

  void linear_infer(const Tensor& x, Tensor& z, Activation act) const override { engine_infer(x, z, act, {}); }

  const Tensor& linear_backward(const Tensor& dz) override {
    if (backward_algorithm() == ConvAlgorithm::Direct) return direct_backward(dz, nullptr);
    return gemm_backward_own(dz, nullptr);
  }

  // The im2col and Winograd algorithms zero dx and add patches or tiles onto
  // it: they write the caller's tensor as well as their own (and adding
  // skips the zeroing). The direct algorithm computes no dx.
  void linear_backward_into(const Tensor& dz, Tensor& dx, GradientWrite how) override {
    if (backward_algorithm() == ConvAlgorithm::Direct)
      throw UsageError(label() + ": the direct algorithm computes no input gradient");
    gemm_backward(dz, nullptr, &dx, how);
  }

  // The direct and Winograd algorithms mask dy and sum the bias gradient
  // inside a pass of their own that reads dy anyway (conv/direct_conv.hpp,
  // conv/winograd_conv.hpp); im2col takes dz made by the frame's pass.
  const Tensor& linear_backward_relu(const Tensor& dy, const Tensor& y) override {
    if (pooled_ && backward_algorithm() == ConvAlgorithm::Direct) {  // dy is the pool's, y the pooled map
      direct_.backward_pooled(g_, dy, y, params_[0].grad.data(), params_[1].grad.data());
      hook_whole_batch(ConvAlgorithm::Direct, dy.dimension(0));
      return dx_;
    }  // Winograd's backward knows its last forward pooled
    switch (backward_algorithm()) {
      case ConvAlgorithm::Direct: return direct_backward(dy, &y);
      case ConvAlgorithm::Im2col: return ActivatedLayer::linear_backward_relu(dy, y);
      default: return gemm_backward_own(dy, &y);
    }
  }

 private:
  // The algorithm of the last forward, which backward must use: the one of
  // the moment may differ since (set_algorithm, set_needs_input_gradient),
  // and its engine would read another engine's state, or none.
  ConvAlgorithm backward_algorithm() const {
    if (forward_algorithm_ == ConvAlgorithm::Auto) throw UsageError(label() + ": backward before forward");
    return forward_algorithm_;
  }

  // Whether algorithm a can pool for the MaxPool2D after this layer.
  bool pools_with(ConvAlgorithm a) const {
    switch (a) {
      case ConvAlgorithm::Direct: return conv::DirectConv::pools(g_);
      case ConvAlgorithm::Winograd2: return conv::WinogradConv<2>::pools(g_);
      case ConvAlgorithm::Winograd4: return conv::WinogradConv<4>::pools(g_);
      default: return false;
    }
  }

  // gemm_backward with dx, when wanted, assigned to the layer's own dx_.
  const Tensor& gemm_backward_own(const Tensor& dy, const Tensor* relu_output) {
    gemm_backward(dy, relu_output, needs_input_gradient() ? &dx_ : nullptr, GradientWrite::Assign);
    return dx_;
  }

  // Bias and kernel gradients, and dx (when not null) written as `how` says,
  // for dz = dy, or for dy masked by a fused ReLU's output (Winograd only).
  void gemm_backward(const Tensor& dy, const Tensor* relu_output, Tensor* dx, GradientWrite how) {
    const Index n = dy.dimension(0);
    if (dx) prepare_gradient_target(*dx, n, input_shape(), how, label());
    float *dkernel = params_[0].grad.data(), *dbias = params_[1].grad.data();
    const ConvAlgorithm a = backward_algorithm();
    switch (a) {
      case ConvAlgorithm::Winograd2: winograd2_.backward(g_, dy, relu_output, dkernel, dbias, dx, how); break;
      case ConvAlgorithm::Winograd4: winograd4_.backward(g_, dy, relu_output, dkernel, dbias, dx, how); break;
      default:
        column_sums(ConstMatrixMap(dy.data(), n * g_.pixels(), g_.f), params_[1].grad);
        im2col_.backward(g_, weights(), dy, dkernel, dx, how, sample_hook_);
        break;
    }
    hook_whole_batch(a, n);
  }

  const Tensor& direct_backward(const Tensor& dy, const Tensor* relu_output) {
    direct_.backward(g_, dy, relu_output, params_[0].grad.data(), params_[1].grad.data());
    hook_whole_batch(ConvAlgorithm::Direct, dy.dimension(0));
    return dx_;  // empty: the direct algorithm serves layers whose dx nobody reads
  }

  // The sample hook's call after a pass of an algorithm that does not call it chunk by chunk.
  void hook_whole_batch(ConvAlgorithm a, Index n) const {
    if (sample_hook_ && a != ConvAlgorithm::Im2col) (*sample_hook_)(0, n);
  }

  conv::ConvWeights weights() const { return {params_[0].value.data(), params_[1].value.data()}; }

  void engine_infer_pooled(const Tensor& x, Tensor& y, const ChannelNormalization& normalize) const {
    switch (algorithm()) {
      case ConvAlgorithm::Winograd2: winograd2_.infer_pooled(g_, weights(), x, y, normalize); break;
      case ConvAlgorithm::Winograd4: winograd4_.infer_pooled(g_, weights(), x, y, normalize); break;
      default: direct_.infer_pooled(g_, weights(), x, y, normalize); break;
    }
  }

  void engine_infer(const Tensor& x, Tensor& z, Activation act, const ChannelNormalization& normalize) const {
    resize_batch(z, x.dimension(0), output_shape());
    switch (algorithm()) {
      case ConvAlgorithm::Direct: direct_.infer(g_, weights(), x, z, act, normalize); break;
      case ConvAlgorithm::Winograd2: winograd2_.infer(g_, weights(), x, z, act, normalize); break;
      case ConvAlgorithm::Winograd4: winograd4_.infer(g_, weights(), x, z, act, normalize); break;
      default: im2col_.infer(g_, weights(), x, z, act, normalize); break;
    }
  }

  Conv2DOptions o_;
  conv::ConvGeometry g_;
  std::array<Param, 2> params_{Param("kernel", {}), Param("bias", {})};
  // Each algorithm keeps its own training buffers; only the layer's is ever filled.
  conv::Im2colConv im2col_;
  conv::DirectConv direct_;
  conv::WinogradConv<2> winograd2_;
  conv::WinogradConv<4> winograd4_;
  bool pool_follows_ = false;  // take_following_max_pool said yes
  bool pool_fusion_ = true;    // set_pool_fusion
  bool pooled_ = false;        // the last forward returned the pooled map
  ConvAlgorithm forward_algorithm_ = ConvAlgorithm::Auto;  // of the last forward; Auto: none yet
  const conv::SampleHook* sample_hook_ = nullptr;  // set_sample_hook
  Tensor dx_;  // (N, H, W, C)
};

}  // namespace loom
