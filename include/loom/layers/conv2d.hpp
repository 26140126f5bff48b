#pragma once
// Conv2D: 2-D convolution (cross-correlation, as every framework) over NHWC,
// computed as im2col followed by a matrix product. The batch is cut into
// chunks of whole samples (about 512 patch rows each); chunks run in parallel,
// one thread each, and each does im2col, product, bias and ReLU while its
// patches are still in cache. Matrix products that small run best on one
// thread each, and a fixed chunking keeps results independent of the thread count.
// A first layer with small patches is computed directly instead ("direct
// convolution" below).
//
//   N batch, H W C input height/width/channels, KH KW kernel, F filters,
//   OH OW output height/width, K = KH*KW*C, P = N*OH*OW output pixels
//   x      (N, H, W, C)
//   kernel (KH, KW, C, F)   seen as the matrix W (K, F); Glorot-uniform
//   bias   (F)              zeros
//   col    (P, K)           row p holds the input patch under output pixel p,
//                           in (kh, kw, c) order, zeros where padded
//   z      (N, OH, OW, F)   seen as Z (P, F) = col W + b
//
// Backward, for dZ = dL/dZ (P, F):
//   dW   = col^T dZ         (K, F)   summed chunk by chunk, in chunk order
//   db   = 1^T dZ           (F)
//   dcol = dZ W^T           (P, K), then col2im adds each patch row back onto
//                           the input pixels it came from: dx (N, H, W, C)
//
// Thread safety: as every Layer (layer.hpp): infer from many threads, forward/backward from one.

#include <algorithm>
#include <array>
#include <string>
#include <type_traits>

#include "loom/layers/activated_layer.hpp"
#include "loom/layers/init.hpp"
#include "loom/layers/window.hpp"

namespace loom {

struct Conv2DOptions {
  Index filters = 0;
  Size2 kernel = 0;
  Size2 strides = 1;
  Padding padding = Padding::Valid;
  Activation activation = Activation::None;
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

  std::string_view kind() const override { return "Conv2D"; }
  std::string_view name_stem() const override { return "conv2d"; }
  const Conv2DOptions& options() const { return o_; }

  /// Patches of at most this many values are convolved directly ("direct convolution" below).
  static constexpr Index kDirectMaxPatch = 32;
  /// True when this layer computes directly rather than by im2col: once built,
  /// with small patches, 16, 32 or 64 filters and no input gradient to compute.
  bool direct() const {
    const Index f = o_.filters;
    return !needs_input_gradient() && patch_size() <= kDirectMaxPatch && (f == 16 || f == 32 || f == 64);
  }

  Shape build(const Shape& input, Random& rng) override {
    if (input.rank() != 3)
      throw ShapeError(label() + ": expects images (height, width, channels), got " + input.to_string());
    win_ = {window_axis(input[0], o_.kernel.h, o_.strides.h, o_.padding),
            window_axis(input[1], o_.kernel.w, o_.strides.w, o_.padding)};
    if (win_.y.out <= 0 || win_.x.out <= 0)
      throw ShapeError(label() + ": kernel " + o_.kernel.to_string() + " does not fit input " + input.to_string() +
                       " with valid padding");
    const Index c = input[2], k = o_.kernel.h * o_.kernel.w * c;
    params_ = {Param("kernel", {o_.kernel.h, o_.kernel.w, c, o_.filters}), Param("bias", {o_.filters})};
    glorot_uniform(params_[0].value, k, o_.kernel.h * o_.kernel.w * o_.filters, rng);
    return set_shapes(input, Shape{win_.y.out, win_.x.out, o_.filters});
  }

  std::span<Param> params() override { return params_; }
  std::span<const Param> params() const override { return params_; }

 protected:
  void linear_forward(const Tensor& x, Tensor& z, Activation act) override {
    if (direct()) x_ = x;  // dW reads the patches in place
    compute(x, z, &col_, act);
  }
  void linear_infer(const Tensor& x, Tensor& z, Activation act) const override { compute(x, z, nullptr, act); }

  // One parallel pass over chunks of samples: each chunk adds its share of
  // dW and db into a partial of its own and, unless this is the first layer,
  // writes its samples' dx. The partials are then summed in chunk order, so
  // the gradients do not depend on the number of threads.
  const Tensor& linear_backward(const Tensor& dz) override {
    const Index n = dz.dimension(0), p = n * pixels(), k = patch_size(), f = o_.filters;
    const Index per = chunk_samples(), chunks = (n + per - 1) / per;
    const bool want_dx = needs_input_gradient();  // the first layer's dx has no reader
    const ConstMatrixMap dZ = as_matrix(dz, p, f);
    dw_parts_.resize(chunks * k, f);
    db_parts_.resize(chunks, f);
    if (want_dx) {
      dcol_.resize(p, k);
      resize_batch(dx_, n, input_shape());
    }
#pragma omp parallel for schedule(static) if (chunks > 1)
    for (Index c = 0; c < chunks; ++c) {
      const Index s0 = c * per, s1 = std::min(n, s0 + per), r0 = s0 * pixels(), rows = (s1 - s0) * pixels();
      const auto dZc = dZ.middleRows(r0, rows);
      if (direct()) {
        dw_parts_.middleRows(c * k, k).setZero();
        for (Index s = s0; s < s1; ++s)
          direct_dispatch([&](auto fixed) {
            direct_dw<decltype(fixed)::value>(x_.data() + s * input_shape().size(), dz.data() + s * pixels() * f,
                                              dw_parts_.data() + c * k * f);
          });
      } else {
        dw_parts_.middleRows(c * k, k).noalias() = col_.middleRows(r0, rows).transpose() * dZc;
      }
      db_parts_.row(c).noalias() = dZc.colwise().sum();
      if (!want_dx) continue;
      dcol_.middleRows(r0, rows).noalias() = dZc * kernel().transpose();
      std::fill_n(dx_.data() + s0 * input_shape().size(), (s1 - s0) * input_shape().size(), 0.0f);  // this chunk's samples
      for (Index s = s0; s < s1; ++s) col2im(dcol_.data() + s * pixels() * k, dx_.data() + s * input_shape().size());
    }
    MatrixMap dW(params_[0].grad.data(), k, f);
    dW = dw_parts_.topRows(k);
    for (Index c = 1; c < chunks; ++c) dW += dw_parts_.middleRows(c * k, k);
    params_[1].grad = db_parts_.colwise().sum().transpose();
    return dx_;
  }

 private:
  ConstMatrixMap kernel() const { return {params_[0].value.data(), patch_size(), o_.filters}; }
  Index patch_size() const { return o_.kernel.h * o_.kernel.w * input_shape()[2]; }

  Index pixels() const { return win_.y.out * win_.x.out; }  // OH * OW output pixels per sample

  // Samples per chunk of work: enough patch rows for an efficient product,
  // few enough that a chunk's patches are still in cache for the product
  // right after im2col wrote them.
  Index chunk_samples() const { return std::max<Index>(1, 512 / pixels()); }

  // z = act(col W + b), chunk by chunk of samples: im2col, product, bias and
  // ReLU while the chunk is in cache. Chunks run in parallel over the batch.
  // Training keeps every patch in *keep for dW; inference uses a chunk-sized
  // scratch per thread, so a large batch costs no large patch matrix.
  void compute(const Tensor& x, Tensor& z, RowMatrix* keep, Activation act) const {
    const Index n = x.dimension(0), k = patch_size(), f = o_.filters;
    const Index per = chunk_samples(), chunks = (n + per - 1) / per;
    if (keep && !direct()) keep->resize(n * pixels(), k);
    resize_batch(z, n, output_shape());
#pragma omp parallel if (chunks > 1)  // one image: no team to wake
    {
      RowMatrix scratch;
#pragma omp for schedule(static)
      for (Index c = 0; c < chunks; ++c) {
        const Index s0 = c * per, s1 = std::min(n, s0 + per), r0 = s0 * pixels(), rows = (s1 - s0) * pixels();
        MatrixMap Z(z.data() + r0 * f, rows, f);
        if (direct()) {
          for (Index s = s0; s < s1; ++s)
            direct_dispatch([&](auto fixed) {
              direct_forward<decltype(fixed)::value>(x.data() + s * input_shape().size(), z.data() + s * pixels() * f);
            });
        } else {
          if (!keep) scratch.resize(rows, k);
          float* col = keep ? keep->data() + r0 * k : scratch.data();
          for (Index s = s0; s < s1; ++s) im2col(x.data() + s * input_shape().size(), col + (s - s0) * pixels() * k);
          Z.noalias() = ConstMatrixMap(col, rows, k) * kernel();
        }
        Z.rowwise() += params_[1].value.transpose();
        if (act == Activation::ReLU) activation::relu_forward(Z.data(), Z.data(), Z.size());
      }
    }
  }

  // ---- direct convolution --------------------------------------------------
  // A first layer on grey or colour images has patches of K <= 32 values. A
  // product with so short a reduction runs far below peak, and im2col spends
  // more time copying 3-float runs than the product multiplies. Computed
  // directly instead, each output pixel's F sums stay in registers while all
  // its taps are added (F fixed at compile time), and dW accumulates tap by
  // tap over the pixels. Used when there is no dx to compute (the first layer
  // of a model, see Layer::set_needs_input_gradient), in training and in
  // inference alike, so forward and infer agree bit for bit.
  // Calls body(std::integral_constant<int, F>) for the layer's filter count.
  template <typename Body>
  void direct_dispatch(Body&& body) const {
    switch (o_.filters) {
      case 16: body(std::integral_constant<int, 16>{}); break;
      case 32: body(std::integral_constant<int, 32>{}); break;
      default: body(std::integral_constant<int, 64>{}); break;
    }
  }

  // z (OH * OW, F) = the convolution of one image (H, W, C), without bias.
  // Output pixels whose window lies inside the image go four at a time: four
  // independent sums hide the latency of each fused multiply-add. Pixels at a
  // padded border go one at a time, skipping the taps that fall outside.
  template <int F>
  void direct_forward(const float* image, float* z) const {
    using Row = Eigen::Matrix<float, 1, F>;
    using WRow = Eigen::Map<const Row>;
    const Index h = input_shape()[0], w = input_shape()[1], c = input_shape()[2], ow = win_.x.out;
    const Index kh = o_.kernel.h, kwid = o_.kernel.w, sx = o_.strides.w, px = win_.x.pad_before;
    const float* kw = params_[0].value.data();  // (K, F)
    // output columns whose whole window row is inside: ox*sx - px >= 0 and ox*sx - px + kw <= w
    const Index in_lo = std::min(ow, (px + sx - 1) / sx);
    const Index in_hi = w - kwid + px < 0 ? 0 : std::min(ow, (w - kwid + px) / sx + 1);
    auto one = [&](Index oy, Index ox) {
      Row acc = Row::Zero();
      for (Index ky = 0; ky < kh; ++ky) {
        const Index iy = oy * o_.strides.h + ky - win_.y.pad_before;
        if (iy < 0 || iy >= h) continue;
        for (Index kx = 0; kx < kwid; ++kx) {
          const Index ix = ox * sx + kx - px;
          if (ix < 0 || ix >= w) continue;
          const float* in = image + (iy * w + ix) * c;
          const float* wt = kw + (ky * kwid + kx) * c * F;
          for (Index ch = 0; ch < c; ++ch) acc.noalias() += in[ch] * WRow(wt + ch * F);
        }
      }
      Eigen::Map<Row>(z + (oy * ow + ox) * F) = acc;
    };
    for (Index oy = 0; oy < win_.y.out; ++oy) {
      const Index iy0 = oy * o_.strides.h - win_.y.pad_before;
      if (iy0 < 0 || iy0 + kh > h || in_lo >= in_hi) {
        for (Index ox = 0; ox < ow; ++ox) one(oy, ox);
        continue;
      }
      Index ox = 0;
      for (; ox < in_lo; ++ox) one(oy, ox);
      const Index step = sx * c;  // input distance between neighbouring output pixels
      for (; ox + 4 <= in_hi; ox += 4) {
        Row a0 = Row::Zero(), a1 = Row::Zero(), a2 = Row::Zero(), a3 = Row::Zero();
        for (Index ky = 0; ky < kh; ++ky) {
          const float* in = image + ((iy0 + ky) * w + ox * sx - px) * c;
          const float* wt = kw + ky * kwid * c * F;
          for (Index j = 0; j < kwid * c; ++j) {  // (kx, ch) taps: contiguous in input and kernel
            const WRow wr(wt + j * F);
            a0.noalias() += in[j] * wr;
            a1.noalias() += in[j + step] * wr;
            a2.noalias() += in[j + 2 * step] * wr;
            a3.noalias() += in[j + 3 * step] * wr;
          }
        }
        float* out = z + (oy * ow + ox) * F;
        Eigen::Map<Row>{out} = a0;
        Eigen::Map<Row>(out + F) = a1;
        Eigen::Map<Row>(out + 2 * F) = a2;
        Eigen::Map<Row>(out + 3 * F) = a3;
      }
      for (; ox < ow; ++ox) one(oy, ox);
    }
  }

  // dW (K, F) += one image's share, from its dZ (OH * OW, F): for each tap t,
  // dW[t] += sum over output pixels p of x[input of p under t] * dZ[p].
  template <int F>
  void direct_dw(const float* image, const float* dz, float* dw) const {
    using Row = Eigen::Matrix<float, 1, F>;
    const Index h = input_shape()[0], w = input_shape()[1], c = input_shape()[2], ow = win_.x.out;
    const Index sx = o_.strides.w, px = win_.x.pad_before;
    for (Index ky = 0; ky < o_.kernel.h; ++ky)
      for (Index kx = 0; kx < o_.kernel.w; ++kx) {
        // output columns whose input column ox*sx + kx - px lies in [0, w)
        const Index first = px - kx, last = w - 1 + px - kx;
        const Index lo = first <= 0 ? 0 : (first + sx - 1) / sx;
        const Index hi = last < 0 ? 0 : std::min(ow, last / sx + 1);
        for (Index ch = 0; ch < c; ++ch) {
          // four independent sums hide the latency of each fused multiply-add
          Row a0 = Row::Zero(), a1 = Row::Zero(), a2 = Row::Zero(), a3 = Row::Zero();
          const Index step = sx * c;
          for (Index oy = 0; oy < win_.y.out; ++oy) {
            const Index iy = oy * o_.strides.h + ky - win_.y.pad_before;
            if (iy < 0 || iy >= h) continue;
            const float* in = image + (iy * w + lo * sx + kx - px) * c + ch;
            const float* g = dz + (oy * ow + lo) * F;
            Index ox = lo;
            for (; ox + 4 <= hi; ox += 4, in += 4 * step, g += 4 * F) {
              a0.noalias() += in[0] * Eigen::Map<const Row>(g);
              a1.noalias() += in[step] * Eigen::Map<const Row>(g + F);
              a2.noalias() += in[2 * step] * Eigen::Map<const Row>(g + 2 * F);
              a3.noalias() += in[3 * step] * Eigen::Map<const Row>(g + 3 * F);
            }
            for (; ox < hi; ++ox, in += step, g += F) a0.noalias() += *in * Eigen::Map<const Row>(g);
          }
          Eigen::Map<Row>(dw + ((ky * o_.kernel.w + kx) * c + ch) * F) += (a0 + a1) + (a2 + a3);
        }
      }
  }

  // ---- im2col ----------------------------------------------------------------
  // Visits the patches of one sample's output pixels as runs along the
  // kernel's width: for each (output pixel, ky), the taps kx whose input lies
  // inside the image are one contiguous run of (kx_end - kx_begin) * C floats
  // in x (NHWC) and in the patch row alike; taps in the padding are runs with
  // pixel = -1. f(offset in the sample's patch rows, offset in the sample's
  // image or -1, length). One loop nest serves im2col and col2im, so their
  // index arithmetic cannot drift apart.
  template <typename F>
  void for_each_run(F&& f) const {
    const Index h = input_shape()[0], w = input_shape()[1], c = input_shape()[2];
    const Index oh = win_.y.out, ow = win_.x.out, k = patch_size(), kw = o_.kernel.w;
    for (Index oy = 0; oy < oh; ++oy)
      for (Index ox = 0; ox < ow; ++ox) {
        const Index row = (oy * ow + ox) * k;
        const Index ix0 = ox * o_.strides.w - win_.x.pad_before;  // input x under kx = 0
        const Index kx_begin = std::max<Index>(0, -ix0), kx_end = std::min<Index>(kw, w - ix0);
        for (Index ky = 0; ky < o_.kernel.h; ++ky) {
          const Index iy = oy * o_.strides.h + ky - win_.y.pad_before;
          const Index tap = row + ky * kw * c;
          if (iy < 0 || iy >= h || kx_begin >= kx_end) {
            f(tap, Index{-1}, kw * c);
            continue;
          }
          if (kx_begin > 0) f(tap, Index{-1}, kx_begin * c);
          f(tap + kx_begin * c, (iy * w + ix0 + kx_begin) * c, (kx_end - kx_begin) * c);
          if (kx_end < kw) f(tap + kx_end * c, Index{-1}, (kw - kx_end) * c);
        }
      }
  }

  // One sample's image (H, W, C) to its patch rows (OH * OW, K). Runs are
  // short (KW * C floats: 3 in a first layer), so Eigen maps copy them inline
  // rather than through memcpy calls.
  void im2col(const float* image, float* patches) const {
    for_each_run([&](Index tap, Index pixel, Index len) {
      if (pixel < 0)
        VectorMap(patches + tap, len).setZero();
      else
        VectorMap(patches + tap, len) = ConstVectorMap(image + pixel, len);
    });
  }

  // Adds one sample's patch-row gradients (OH * OW, K) back onto its image gradient (H, W, C).
  void col2im(const float* dpatches, float* dimage) const {
    for_each_run([&](Index tap, Index pixel, Index len) {
      if (pixel >= 0) VectorMap(dimage + pixel, len) += ConstVectorMap(dpatches + tap, len);
    });
  }

  Conv2DOptions o_;
  Window win_;
  std::array<Param, 2> params_{Param("kernel", {}), Param("bias", {})};
  RowMatrix col_;   // (P, K) patches of the last forward (im2col)
  Tensor x_;        // (N, H, W, C) input of the last forward (direct)
  RowMatrix dcol_;      // (P, K)
  RowMatrix dw_parts_;  // (chunks * K, F) each chunk's share of dW
  RowMatrix db_parts_;  // (chunks, F) each chunk's share of db
  Tensor dx_;       // (N, H, W, C)
};

}  // namespace loom
