#pragma once
// BatchNormalization: each channel (the last axis) normalised over the batch
// and, for images, over the pixels too, then scaled and shifted; Keras's layer
// with axis -1 (after Conv2D, per channel; after Dense, per feature).
//
//   M = N*H*W rows of C channels: x and y are (N, H, W, C), or (N, 1, 1, C) for flat input
//   gamma (C)            trainable, ones         beta (C)             trainable, zeros
//   moving_mean (C)      not trainable, zeros    moving_variance (C)  not trainable, ones
//
// Forward, with mean and var the statistics of the mode:
//   x_hat = (x - mean) / sqrt(var + eps),  y = gamma x_hat + beta
//   (and y = max(0, gamma x_hat + beta) when fused with the ReLU after it, below)
//   Training: mean and var are the batch's, the variance biased (divided by M,
//   as Keras and TensorFlow), and the moving statistics follow them:
//     moving = moving * momentum + batch statistic * (1 - momentum)
//   Inference (and infer): the moving statistics, left as they are.
// Backward, for dy = dL/dy, with the statistics the last forward used:
//   dbeta = sum dy,  dgamma = sum dy x_hat              (sums over the M rows)
//   Inference: the map is affine in x:  dx = gamma / sqrt(var + eps) dy
//   Training: mean and var depend on x too; their terms remove from dy its
//   mean and its projection on x_hat:
//     dx = gamma / sqrt(var + eps) (dy - (dbeta + x_hat dgamma) / M)
//
// Fusion with a ReLU. A container (Sequential, a Residual's paths: see
// chain::fuse_relus) that finds a ReLU right after a BatchNormalization has
// the pair train as one pass: forward applies the ReLU while the block of
// rows is in cache, the ReLU layer passes it on, and backward masks dy where
// gamma x_hat + beta <= 0, recomputed from x with the forward's own
// arithmetic, so no pass of the ReLU's own and no copy of its output. The
// results are bitwise those of the two layers apart (tests). infer is never
// fused: it serves any layer's output (embeddings of the BatchNormalization);
// a chain's inference calls infer_in_place instead, on the output of the
// layer before, with the ReLU after it when there is one (chain::infer_step).
//
// Sums over the rows are in double, in fixed blocks of rows that each thread
// sums alone, added in block order, so results do not depend on the thread
// count. The batch variance is summed around the first row's values (the
// shifted-data algorithm): one pass, without the cancellation of
// E[x^2] - E[x]^2 when the mean is large against the spread.
//
// Thread safety: as every Layer (layer.hpp): infer from many threads, forward/backward from one.

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstdint>
#include <string>
#include <type_traits>
#include <utility>

#include "loom/channel_normalization.hpp"
#include "loom/io/layer_config.hpp"
#include "loom/layer.hpp"
#include "loom/parallel.hpp"

namespace loom {

struct BatchNormalizationOptions {
  float momentum = 0.99f;  // in [0, 1): how much of the moving statistics each training batch keeps
  float epsilon = 1e-3f;   // > 0: added to the variance before its square root
  float initial_gamma = 1.0f;  // finite: gamma's starting value (0: the layer starts by outputting beta, zero)
};

class BatchNormalization final : public Layer {
 public:
  explicit BatchNormalization(BatchNormalizationOptions o = {}) : o_(o) {
    if (!(o.momentum >= 0.0f && o.momentum < 1.0f))
      throw UsageError("BatchNormalization: momentum must be in [0, 1), got " + detail::option_value_text(o.momentum));
    if (!(o.epsilon > 0.0f && std::isfinite(o.epsilon)))
      throw UsageError("BatchNormalization: epsilon must be positive and finite, got " +
                       detail::option_value_text(o.epsilon));
    if (!std::isfinite(o.initial_gamma))
      throw UsageError("BatchNormalization: initial_gamma must be finite, got " +
                       detail::option_value_text(o.initial_gamma));
  }

  static constexpr std::string_view kKind = "BatchNormalization";
  std::string_view kind() const override { return kKind; }
  std::string_view name_stem() const override { return "batch_normalization"; }
  const BatchNormalizationOptions& options() const { return o_; }

  const Eigen::VectorXf& gamma() const { return params_[0].value; }
  const Eigen::VectorXf& beta() const { return params_[1].value; }
  const Eigen::VectorXf& moving_mean() const { return params_[2].value; }
  const Eigen::VectorXf& moving_variance() const { return params_[3].value; }

  void write_config(LayerConfigWriter& w) const override {
    w.put_f32(o_.momentum);
    w.put_f32(o_.epsilon);
  }
  static std::unique_ptr<Layer> from_config(LayerConfigReader& r) {
    BatchNormalizationOptions o;
    o.momentum = r.get_f32("BatchNormalization momentum");
    o.epsilon = r.get_f32("BatchNormalization epsilon");
    r.claim_param_count(4 * static_cast<std::uint64_t>(r.input_shape().channels()));
    return std::make_unique<BatchNormalization>(o);
  }

  // Any per-sample shape: rank 3 normalises per channel, rank 1 per feature.
  Shape build(const Shape& input, Random&) override {
    const Index c = input.channels();
    params_ = {Param("gamma", {c}), Param("beta", {c}), Param("moving_mean", {c}, Trainable::No),
               Param("moving_variance", {c}, Trainable::No)};
    params_[0].value.setConstant(o_.initial_gamma);
    params_[3].value.setOnes();
    return set_shapes(input, input);
  }

  std::span<Param> params() override { return params_; }
  std::span<const Param> params() const override { return params_; }

  /// Training (forward, backward) as one pass with the ReLU layer that
  /// follows this one, which then passes values through (ReLU::set_input_rectified).
  /// Asked by the container (chain::fuse_relus), never by hand.
  bool take_following_relu() override {
    fused_relu_ = true;
    return true;
  }
  bool fused_relu() const { return fused_relu_; }

  const Tensor& forward(const Tensor& x) override {
    check_input(x);
    const Index rows = rows_of(x), c = channels();
    resize_like(y_, x);
    x_ = &x;  // backward reads it again (layer.hpp): x_hat is made from it where needed, never stored
    forward_mode_ = mode();
    if (forward_mode_ == Mode::Training && rows > 0) {
      const auto [mean, variance] = batch_statistics(x.data(), rows, c);
      used_ = normalization(mean, variance);
      update_moving(mean, variance);
    } else {
      used_ = moving_normalization();
    }
    for_row_blocks(rows, c, [&](Index, Index begin, Index end) {
      if (fused_relu_) normalize_rows<true>(x.data(), y_.data(), begin, end, used_);
      else normalize_rows<false>(x.data(), y_.data(), begin, end, used_);
    });
    return y_;
  }

  const Tensor& backward(const Tensor& dy) override {
    if (!x_ || dy.dimensions() != y_.dimensions())  // y_ has x's dimensions
      throw ShapeError(label() + ": backward expects dy of the last forward's dimensions " + dims_string(y_) +
                       ", got " + dims_string(dy));
    const Index rows = rows_of(dy), c = channels();
    // dbeta = sum dy, dgamma = sum dy x_hat, in double.
    // Fused with a ReLU: every pass reads dy masked where the ReLU cut (relu_mask).
    const auto [dbeta, dgamma] = channel_sums(rows, c, [&](Index begin, Index end, double* s_dy, double* s_dy_xhat) {
      if (fused_relu_) sum_dy_and_dy_x_hat<true>(dy.data(), x_->data(), begin, end, used_, s_dy, s_dy_xhat);
      else sum_dy_and_dy_x_hat<false>(dy.data(), x_->data(), begin, end, used_, s_dy, s_dy_xhat);
    });
    params_[1].grad = dbeta.cast<float>().matrix();
    params_[0].grad = dgamma.cast<float>().matrix();
    if (!needs_input_gradient()) return dx_;  // first layer: nobody reads dx
    resize_like(dx_, dy);
    if (forward_mode_ == Mode::Training && rows > 0) {
      const double m = static_cast<double>(rows);
      const Eigen::ArrayXf mean_dy = (dbeta / m).cast<float>(), mean_dy_xhat = (dgamma / m).cast<float>();
      for_row_blocks(rows, c, [&](Index, Index begin, Index end) {
        if (fused_relu_)
          training_dx<true>(dy.data(), x_->data(), dx_.data(), begin, end, used_, mean_dy.data(), mean_dy_xhat.data());
        else
          training_dx<false>(dy.data(), x_->data(), dx_.data(), begin, end, used_, mean_dy.data(), mean_dy_xhat.data());
      });
    } else {
      for_row_blocks(rows, c, [&](Index, Index begin, Index end) {
        if (fused_relu_) inference_dx<true>(dy.data(), x_->data(), dx_.data(), begin, end, used_);
        else inference_dx<false>(dy.data(), x_->data(), dx_.data(), begin, end, used_);
      });
    }
    return dx_;
  }

  void infer(const Tensor& x, Tensor& y) const override {
    check_input(x);
    resize_like(y, x);
    infer_rows(x.data(), y.data(), rows_of(x), false);
  }

  /// infer on y in place, and with relu the ReLU after it, in one pass over
  /// y: what a chain's inference does with the output of the layer before
  /// (chain::infer_step), saving a tensor and the ReLU's own pass. Bitwise
  /// infer's values (then ReLU's).
  void infer_in_place(Tensor& y, bool relu) const {
    check_input(y);
    infer_rows(y.data(), y.data(), rows_of(y), relu);
  }

 private:
  // Per channel: x_hat = (x - center) * inv_std and y = affine(x_hat) = x_hat * gamma + beta;
  // scale = gamma * inv_std (dx's factor). Computed in double from the statistics, rounded once.
  struct Normalization {
    Eigen::ArrayXf center, inv_std, gamma, beta, scale;
  };

 public:
  /// infer's per-channel map, from the moving statistics as they are now, in
  /// arrays of its own; view() hands it to a convolution's output stage
  /// (Conv2D::infer_normalized), which then computes infer's values.
  class InferenceMap {
   public:
    ChannelNormalization view() const { return {n_.center.data(), n_.inv_std.data(), n_.gamma.data(), n_.beta.data()}; }

   private:
    friend class BatchNormalization;
    explicit InferenceMap(Normalization n) : n_(std::move(n)) {}
    Normalization n_;
  };
  InferenceMap inference_map() const { return InferenceMap(moving_normalization()); }

 private:
  Normalization moving_normalization() const {
    return normalization(moving_mean().cast<double>().array(), moving_variance().cast<double>().array());
  }
  Normalization normalization(const Eigen::ArrayXd& mean, const Eigen::ArrayXd& variance) const {
    const Eigen::ArrayXd inv_std = (variance + static_cast<double>(o_.epsilon)).rsqrt();
    return {mean.cast<float>(), inv_std.cast<float>(), gamma().array(), beta().array(),
            (gamma().cast<double>().array() * inv_std).cast<float>()};
  }

  // y before a fused ReLU, and x_hat: ChannelNormalization's arithmetic, which
  // the convolutions' output stage shares (one rounding everywhere).
  static float affine(float x_hat, float gamma, float beta) { return ChannelNormalization::affine(x_hat, gamma, beta); }
  static float normalized(float x, float center, float inv_std) {
    return ChannelNormalization::normalized(x, center, inv_std);
  }

  // The batch's per-channel mean and biased variance, from sums of d = x - shift
  // and d^2 with shift = the first row: var = E[d^2] - E[d]^2, both small
  // when the shift is a value of the batch.
  std::pair<Eigen::ArrayXd, Eigen::ArrayXd> batch_statistics(const float* x, Index rows, Index c) const {
    const Eigen::ArrayXd shift = Eigen::Map<const Eigen::ArrayXf>(x, c).cast<double>();
    const auto [sum_d, sum_d2] = channel_sums(rows, c, [&](Index begin, Index end, double* s_d, double* s_d2) {
      sum_shifted(x, shift.data(), begin, end, c, s_d, s_d2);
    });
    const double m = static_cast<double>(rows);
    const Eigen::ArrayXd mean_d = sum_d / m;
    return {shift + mean_d, (sum_d2 / m - mean_d.square()).max(0.0)};
  }

  // Keras's rule, with the biased batch variance, in double, rounded once.
  void update_moving(const Eigen::ArrayXd& mean, const Eigen::ArrayXd& variance) {
    const double keep = static_cast<double>(o_.momentum), take = 1.0 - keep;
    for (const auto& [p, stat] : {std::pair{&params_[2], &mean}, std::pair{&params_[3], &variance}})
      p->value = (p->value.cast<double>().array() * keep + *stat * take).cast<float>().matrix();
  }

  // ---- row blocks -----------------------------------------------------------

  // Blocks of about 8K values (32 KB of floats, in L1/L2 while a block is
  // worked on); their positions depend on the shapes only, never on the threads.
  static constexpr Index kBlockValues = Index{1} << 13;
  static constexpr Index kParallelValues = Index{1} << 15;  // less work than this stays on one thread
  static Index block_rows(Index c) { return std::max<Index>(1, kBlockValues / c); }

  // fn(block, begin, end) for consecutive blocks of rows covering [0, rows).
  template <typename Fn>
  static void for_row_blocks(Index rows, Index c, Fn&& fn) {
    const Index per = block_rows(c), blocks = (rows + per - 1) / per;
    parallel_for(blocks, rows * c >= kParallelValues, [&](Index b) { fn(b, b * per, std::min(rows, (b + 1) * per)); });
  }

  // Two per-channel sums over the rows, in double: add(begin, end, s1, s2)
  // adds rows [begin, end) into s1 and s2 (C doubles each, zeroed). Each block
  // has partial sums of its own; they are added in block order.
  template <typename Add>
  static std::pair<Eigen::ArrayXd, Eigen::ArrayXd> channel_sums(Index rows, Index c, Add&& add) {
    const Index blocks = (rows + block_rows(c) - 1) / block_rows(c);
    Eigen::ArrayXXd parts = Eigen::ArrayXXd::Zero(2 * c, std::max<Index>(blocks, 1));
    for_row_blocks(rows, c, [&](Index b, Index begin, Index end) {
      add(begin, end, parts.col(b).data(), parts.col(b).data() + c);
    });
    std::pair<Eigen::ArrayXd, Eigen::ArrayXd> sums{parts.col(0).head(c), parts.col(0).tail(c)};
    for (Index b = 1; b < blocks; ++b) {
      sums.first += parts.col(b).head(c);
      sums.second += parts.col(b).tail(c);
    }
    return sums;
  }

  // ---- per-block kernels: rows of C contiguous channels, the channel loop innermost (vectorised)

  // infer's rows with the moving statistics, y = x allowed; relu: then max(0, y), block by block.
  void infer_rows(const float* x, float* y, Index rows, bool relu) const {
    const Normalization moving = moving_normalization();
    // The same function as inference-mode forward: bitwise the same output.
    for_row_blocks(rows, channels(), [&](Index, Index begin, Index end) {
      if (relu) normalize_rows<true>(x, y, begin, end, moving);
      else normalize_rows<false>(x, y, begin, end, moving);
    });
  }

  // Forward: y = affine(x_hat), and with kRelu then max(y, 0), the ReLU
  // layer's value (NaN and -0 included), while y is in a register rather than
  // in a second pass over the block. infer calls this same function. In place
  // (x = y) allowed.
  template <bool kRelu>
  static void normalize_rows(const float* x, float* y, Index begin, Index end, const Normalization& n) {
    const Index c = n.center.size();
    const float *center = n.center.data(), *inv_std = n.inv_std.data(), *gamma = n.gamma.data(), *beta = n.beta.data();
    for (Index r = begin; r < end; ++r)
      for (Index ch = 0; ch < c; ++ch) {
        const Index i = r * c + ch;
        const float v = affine(normalized(x[i], center[ch], inv_std[ch]), gamma[ch], beta[ch]);
        y[i] = kRelu ? std::max(v, 0.0f) : v;
      }
  }
  // Whether a fused ReLU lets y = affine(x_hat) through (y > 0): where it
  // cuts, the gradient g is 0, elsewhere dy.
  static bool relu_keeps(float x_hat, float gamma, float beta) { return affine(x_hat, gamma, beta) > 0.0f; }
  // dy, or with a fused ReLU dy where the ReLU let y through and 0 where it cut.
  // (Written as a bit mask: GCC vectorises it where a conditional `? dy : 0`
  // into the double sums stays a scalar loop, 4x slower. T is float or double:
  // the sums mask dy after its conversion to double, which keeps dy's load a
  // plain load. A mask on the float became a masked load of dy, which cannot
  // start before x's load and the compare are done: the recipe ResNet's
  // BatchNormalization backward took 3.2-3.4 ms of its step that way, 2.3-2.5
  // with the plain load, the same bits; docs/benchmarks.md.)
  template <bool kFusedRelu, typename T>
  static T relu_mask(T dy, float x_hat, float gamma, float beta) {
    if constexpr (!kFusedRelu) return dy;
    using Bits = std::conditional_t<sizeof(T) == 4, std::uint32_t, std::uint64_t>;
    const Bits keep = -static_cast<Bits>(relu_keeps(x_hat, gamma, beta));
    return std::bit_cast<T>(std::bit_cast<Bits>(dy) & keep);
  }
  static void sum_shifted(const float* __restrict x, const double* __restrict shift, Index begin, Index end, Index c,
                          double* __restrict s_d, double* __restrict s_d2) {
    for (Index r = begin; r < end; ++r)
      for (Index ch = 0; ch < c; ++ch) {
        const double d = static_cast<double>(x[r * c + ch]) - shift[ch];
        s_d[ch] += d;
        s_d2[ch] += d * d;
      }
  }

  // Backward, from x: x_hat made again as forward made it; g is dy, masked by a fused ReLU.
  template <bool kFusedRelu>
  static void sum_dy_and_dy_x_hat(const float* __restrict dy, const float* __restrict x, Index begin, Index end,
                                  const Normalization& n, double* __restrict s_dy, double* __restrict s_dy_xhat) {
    const Index c = n.gamma.size();
    const float *center = n.center.data(), *inv_std = n.inv_std.data(), *gamma = n.gamma.data(), *beta = n.beta.data();
    for (Index r = begin; r < end; ++r)
      for (Index ch = 0; ch < c; ++ch) {
        const Index i = r * c + ch;
        const float h = normalized(x[i], center[ch], inv_std[ch]);
        const double g = relu_mask<kFusedRelu>(static_cast<double>(dy[i]), h, gamma[ch], beta[ch]);
        s_dy[ch] += g;
        s_dy_xhat[ch] += g * static_cast<double>(h);
      }
  }
  // dx = scale * (g - (mean of g + x_hat * mean of g x_hat)): the batch statistics' share taken out.
  // Where a fused ReLU cut, g is 0 and the difference 0 - share: written as a
  // choice between two differences, so that dy's load stays a plain load
  // (relu_mask), with the values of g masked first, bit for bit.
  template <bool kFusedRelu>
  static void training_dx(const float* __restrict dy, const float* __restrict x, float* __restrict dx, Index begin,
                          Index end, const Normalization& n, const float* __restrict mean_dy,
                          const float* __restrict mean_dy_xhat) {
    const Index c = n.scale.size();
    const float *center = n.center.data(), *inv_std = n.inv_std.data(), *gamma = n.gamma.data(), *beta = n.beta.data();
    const float* scale = n.scale.data();
    for (Index r = begin; r < end; ++r)
      for (Index ch = 0; ch < c; ++ch) {
        const Index i = r * c + ch;
        const float h = normalized(x[i], center[ch], inv_std[ch]);
        const float share = mean_dy[ch] + h * mean_dy_xhat[ch], g = dy[i];
        const float centred = !kFusedRelu || relu_keeps(h, gamma[ch], beta[ch]) ? g - share : 0.0f - share;
        dx[i] = scale[ch] * centred;
      }
  }
  // dx = scale * g: fixed statistics, an affine map.
  template <bool kFusedRelu>
  static void inference_dx(const float* __restrict dy, const float* __restrict x, float* __restrict dx,
                           Index begin, Index end, const Normalization& n) {
    const Index c = n.scale.size();
    const float *center = n.center.data(), *inv_std = n.inv_std.data(), *gamma = n.gamma.data(), *beta = n.beta.data();
    const float* scale = n.scale.data();
    for (Index r = begin; r < end; ++r)
      for (Index ch = 0; ch < c; ++ch) {
        const Index i = r * c + ch;
        dx[i] = scale[ch] * relu_mask<kFusedRelu>(dy[i], normalized(x[i], center[ch], inv_std[ch]), gamma[ch], beta[ch]);
      }
  }

  Index channels() const { return input_shape().channels(); }
  static Index rows_of(const Tensor& t) { return t.dimension(0) * t.dimension(1) * t.dimension(2); }

  BatchNormalizationOptions o_;
  std::array<Param, 4> params_{Param("gamma", {}), Param("beta", {}), Param("moving_mean", {}, Trainable::No),
                               Param("moving_variance", {}, Trainable::No)};
  Mode forward_mode_ = Mode::Training;  // the mode of the last forward, which backward follows
  bool fused_relu_ = false;             // training as one pass with the ReLU after it
  Normalization used_;                  // the statistics of the last forward
  Tensor y_;      // (N, H, W, C)
  const Tensor* x_ = nullptr;  // the input of the last forward, kept by the caller (layer.hpp)
  Tensor dx_;     // (N, H, W, C)
};

}  // namespace loom
