// Direct first-layer convolution: the kernels behind
// include/loom/conv/direct_conv.hpp (which explains them), compiled once.

#include "loom/conv/direct_conv.hpp"

#include <algorithm>
#include <type_traits>

namespace loom::conv {
namespace {

Index chunk_samples(const ConvGeometry& g) { return std::max<Index>(1, 512 / g.pixels()); }

// Calls body(std::integral_constant<int, F>) for the layer's filter count
// (one of 8, 16, ..., 64: supports() was checked).
template <typename Body>
void dispatch(const ConvGeometry& g, Body&& body) {
  switch (g.f) {
    case 8: body(std::integral_constant<int, 8>{}); break;
    case 16: body(std::integral_constant<int, 16>{}); break;
    case 24: body(std::integral_constant<int, 24>{}); break;
    case 32: body(std::integral_constant<int, 32>{}); break;
    case 40: body(std::integral_constant<int, 40>{}); break;
    case 48: body(std::integral_constant<int, 48>{}); break;
    case 56: body(std::integral_constant<int, 56>{}); break;
    default: body(std::integral_constant<int, 64>{}); break;
  }
}

// z (OH * OW, F) = the convolution of one image (H, W, C), without bias.
// Output pixels whose window lies inside the image go four at a time: four
// independent sums hide the latency of each fused multiply-add. Pixels at a
// padded border go one at a time, skipping the taps that fall outside.
template <int F>
void forward_one(const ConvGeometry& g, const float* kw, const float* image, float* z) {
  using Row = Eigen::Matrix<float, 1, F>;
  using WRow = Eigen::Map<const Row>;
  const Index h = g.h, w = g.w, c = g.c, ow = g.ow, kh = g.kh, kwid = g.kw, sx = g.sw, px = g.pad_left;
  // output columns whose whole window row is inside: ox*sx - px >= 0 and ox*sx - px + kw <= w
  const Index in_lo = std::min(ow, (px + sx - 1) / sx);
  const Index in_hi = w - kwid + px < 0 ? 0 : std::min(ow, (w - kwid + px) / sx + 1);
  auto one = [&](Index oy, Index ox) {
    Row acc = Row::Zero();
    for (Index ky = 0; ky < kh; ++ky) {
      const Index iy = oy * g.sh + ky - g.pad_top;
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
  for (Index oy = 0; oy < g.oh; ++oy) {
    const Index iy0 = oy * g.sh - g.pad_top;
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
void dw_one(const ConvGeometry& g, const float* image, const float* dz, float* dw) {
  using Row = Eigen::Matrix<float, 1, F>;
  const Index h = g.h, w = g.w, c = g.c, ow = g.ow, sx = g.sw, px = g.pad_left;
  for (Index ky = 0; ky < g.kh; ++ky)
    for (Index kx = 0; kx < g.kw; ++kx) {
      // output columns whose input column ox*sx + kx - px lies in [0, w)
      const Index first = px - kx, last = w - 1 + px - kx;
      const Index lo = first <= 0 ? 0 : (first + sx - 1) / sx;
      const Index hi = last < 0 ? 0 : std::min(ow, last / sx + 1);
      for (Index ch = 0; ch < c; ++ch) {
        // four independent sums hide the latency of each fused multiply-add
        Row a0 = Row::Zero(), a1 = Row::Zero(), a2 = Row::Zero(), a3 = Row::Zero();
        const Index step = sx * c;
        for (Index oy = 0; oy < g.oh; ++oy) {
          const Index iy = oy * g.sh + ky - g.pad_top;
          if (iy < 0 || iy >= h) continue;
          const float* in = image + (iy * w + lo * sx + kx - px) * c + ch;
          const float* gz = dz + (oy * ow + lo) * F;
          Index ox = lo;
          for (; ox + 4 <= hi; ox += 4, in += 4 * step, gz += 4 * F) {
            a0.noalias() += in[0] * Eigen::Map<const Row>(gz);
            a1.noalias() += in[step] * Eigen::Map<const Row>(gz + F);
            a2.noalias() += in[2 * step] * Eigen::Map<const Row>(gz + 2 * F);
            a3.noalias() += in[3 * step] * Eigen::Map<const Row>(gz + 3 * F);
          }
          for (; ox < hi; ++ox, in += step, gz += F) a0.noalias() += *in * Eigen::Map<const Row>(gz);
        }
        Eigen::Map<Row>(dw + ((ky * g.kw + kx) * c + ch) * F) += (a0 + a1) + (a2 + a3);
      }
    }
}

}  // namespace

void DirectConv::infer(const ConvGeometry& g, const ConvWeights& w, const Tensor& x, Tensor& z, Activation act) const {
  const SampleChunks chunks(x.dimension(0), chunk_samples(g));
  const Eigen::Map<const Eigen::RowVectorXf> b(w.bias, g.f);
#pragma omp parallel for schedule(static) if (chunks.count() > 1)
  for (Index c = 0; c < chunks.count(); ++c) {
    const Index s0 = chunks.first(c), rows = chunks.size(c) * g.pixels();
    for (Index s = s0; s < chunks.end(c); ++s)
      dispatch(g, [&](auto fixed) {
        forward_one<decltype(fixed)::value>(g, w.kernel, x.data() + s * g.input_size(), z.data() + s * g.output_size());
      });
    MatrixMap Z(z.data() + s0 * g.output_size(), rows, g.f);
    Z.rowwise() += b;
    if (act == Activation::ReLU) activation::relu_forward(Z.data(), Z.data(), Z.size());
  }
}


void DirectConv::backward(const ConvGeometry& g, const Tensor& dz, float* dkernel) {
  const Index k = g.patch(), f = g.f;
  const SampleChunks chunks(dz.dimension(0), chunk_samples(g));
  dw_parts_.setZero(chunks.count() * k, f);
#pragma omp parallel for schedule(static) if (chunks.count() > 1)
  for (Index c = 0; c < chunks.count(); ++c)
    for (Index s = chunks.first(c); s < chunks.end(c); ++s)
      dispatch(g, [&](auto fixed) {
        dw_one<decltype(fixed)::value>(g, x_.data() + s * g.input_size(), dz.data() + s * g.output_size(),
                                       dw_parts_.data() + c * k * f);
      });
  MatrixMap dW(dkernel, k, f);
  dW = dw_parts_.topRows(k);
  for (Index c = 1; c < chunks.count(); ++c) dW += dw_parts_.middleRows(c * k, k);
}

}  // namespace loom::conv
