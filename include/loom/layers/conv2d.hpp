#pragma once
// Conv2D: 2-D convolution (cross-correlation, as every framework) over NHWC,
// computed as im2col followed by one matrix product per batch.
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
//   dW   = col^T dZ         (K, F)
//   db   = 1^T dZ           (F)
//   dcol = dZ W^T           (P, K), then col2im adds each patch row back onto
//                           the input pixels it came from: dx (N, H, W, C)

#include <algorithm>
#include <array>
#include <string>

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

  Shape build(const Shape& input, Random& rng) override {
    if (input.rank() != 3)
      throw ShapeError(label() + ": expects images (height, width, channels), got " + input.to_string());
    win_ = {o_.kernel, o_.strides, window_axis(input[0], o_.kernel.h, o_.strides.h, o_.padding),
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
  void linear_forward(const Tensor& x, Tensor& z) override { compute(x, z, col_); }
  void linear_infer(const Tensor& x, Tensor& z) const override {
    RowMatrix col;  // scratch of this call: inference shares nothing between threads
    compute(x, z, col);
  }

  const Tensor& linear_backward(const Tensor& dz) override {
    const Index p = col_.rows(), k = col_.cols(), f = o_.filters;
    ConstMatrixMap dZ = as_matrix(dz, p, f);
    MatrixMap(params_[0].grad.data(), k, f).noalias() = col_.transpose() * dZ;
    params_[1].grad.noalias() = dZ.colwise().sum().transpose();
    if (!needs_input_gradient()) return dx_;  // first layer: nobody wants dx
    dcol_.resize(p, k);
    dcol_.noalias() = dZ * kernel().transpose();
    resize_batch(dx_, p / (win_.y.out * win_.x.out), input_shape());
    col2im(dcol_, dx_);
    return dx_;
  }

 private:
  ConstMatrixMap kernel() const { return {params_[0].value.data(), patch_size(), o_.filters}; }
  Index patch_size() const { return o_.kernel.h * o_.kernel.w * input_shape()[2]; }

  void compute(const Tensor& x, Tensor& z, RowMatrix& col) const {
    const Index n = x.dimension(0), p = n * win_.y.out * win_.x.out;
    im2col(x, col);
    resize_batch(z, n, output_shape());
    MatrixMap Z = as_matrix(z, p, o_.filters);
    Z.noalias() = col * kernel();
    Z.rowwise() += params_[1].value.transpose();
  }

  // Visits the patch of every output pixel as runs along the kernel's width:
  // for each (output pixel, ky), the taps kx whose input lies inside the image
  // are one contiguous run of (kx_end - kx_begin) * C floats in x (NHWC) and in
  // the patch row alike; taps in the padding are runs with pixel = -1.
  // f(patch offset, input offset or -1, length). One loop nest serves im2col
  // and col2im, so their index arithmetic cannot drift apart.
  template <typename F>
  void for_each_run(Index sample, F&& f) const {
    const Index h = input_shape()[0], w = input_shape()[1], c = input_shape()[2];
    const Index oh = win_.y.out, ow = win_.x.out, k = patch_size(), kw = o_.kernel.w;
    for (Index oy = 0; oy < oh; ++oy)
      for (Index ox = 0; ox < ow; ++ox) {
        const Index row = ((sample * oh + oy) * ow + ox) * k;
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
          f(tap + kx_begin * c, ((sample * h + iy) * w + ix0 + kx_begin) * c, (kx_end - kx_begin) * c);
          if (kx_end < kw) f(tap + kx_end * c, Index{-1}, (kw - kx_end) * c);
        }
      }
  }

  void im2col(const Tensor& x, RowMatrix& col) const {
    const Index n = x.dimension(0);
    col.resize(n * win_.y.out * win_.x.out, patch_size());
    float* dst = col.data();
    const float* src = x.data();
#pragma omp parallel for schedule(static)
    for (Index s = 0; s < n; ++s)
      for_each_run(s, [&](Index tap, Index pixel, Index len) {
        if (pixel < 0)
          std::fill_n(dst + tap, len, 0.0f);
        else
          std::copy_n(src + pixel, len, dst + tap);
      });
  }

  // Each sample writes only its own part of dx, so samples run in parallel.
  void col2im(const RowMatrix& dcol, Tensor& dx) const {
    const Index n = dx.dimension(0);
    dx.setZero();
    const float* src = dcol.data();
    float* dst = dx.data();
#pragma omp parallel for schedule(static)
    for (Index s = 0; s < n; ++s)
      for_each_run(s, [&](Index tap, Index pixel, Index len) {
        if (pixel >= 0)
          for (Index i = 0; i < len; ++i) dst[pixel + i] += src[tap + i];
      });
  }

  Conv2DOptions o_;
  Window win_;
  std::array<Param, 2> params_{Param("kernel", {}), Param("bias", {})};
  RowMatrix col_;   // (P, K) patches of the last forward
  RowMatrix dcol_;  // (P, K)
  Tensor dx_;       // (N, H, W, C)
};

}  // namespace loom
