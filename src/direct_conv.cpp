// Direct first-layer convolution: the kernels behind
// include/loom/conv/direct_conv.hpp (which explains them), compiled once.

#include "loom/conv/direct_conv.hpp"

#include <omp.h>

#include <algorithm>
#include <type_traits>

#include "loom/parallel.hpp"
#include "loom/threads.hpp"

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

// Output pixels (rows and columns) whose whole window lies inside the image.
struct Interior {
  Index y0, y1, x0, x1;  // [y0, y1) x [x0, x1)
  explicit Interior(const ConvGeometry& g)
      : y0(first_inside(g.pad_top, g.sh, g.oh)), y1(end_inside(g.h, g.kh, g.pad_top, g.sh, g.oh)),
        x0(first_inside(g.pad_left, g.sw, g.ow)), x1(end_inside(g.w, g.kw, g.pad_left, g.sw, g.ow)) {
    if (y1 < y0) y1 = y0;
    if (x1 < x0) x1 = x0;
  }
  // first o with o*s - pad >= 0; end of o with o*s - pad + k <= n
  static Index first_inside(Index pad, Index s, Index out) { return std::min(out, (pad + s - 1) / s); }
  static Index end_inside(Index n, Index k, Index pad, Index s, Index out) {
    return n - k + pad < 0 ? 0 : std::min(out, (n - k + pad) / s + 1);
  }
};

// Calls tile(std::integral_constant<int, FB>, f0) over F filters in blocks
// of FB: 32 at a time where the compiler targets AVX-512 (a block of 16 is
// one 512-bit register there, too few accumulators to keep its FMA pipes
// busy), else 16, then a last block of 16 and of 8 for the rest. Every
// filter's sums are the same whichever block holds it.
template <int F, typename Tile>
void for_filter_blocks(Tile&& tile) {
#if defined(__AVX512F__)
  constexpr int kWide = 32;
#else
  constexpr int kWide = 16;
#endif
  int f0 = 0;
  for (; f0 + kWide <= F; f0 += kWide) tile(std::integral_constant<int, kWide>{}, f0);
  if constexpr (F % kWide >= 16) tile(std::integral_constant<int, 16>{}, f0), f0 += 16;
  if constexpr (F % 16 != 0) tile(std::integral_constant<int, 8>{}, f0);
}

// P output pixels of a row times FB filters, the register tile: P * FB / 8
// accumulators of 8 floats (12 of the 16 AVX registers at 6 x 16, like the
// product's tile; 12 of the 32 AVX-512 registers at 6 x 32), every tap added
// while they stay in registers, then bias and ReLU as they are stored. `in` is the first pixel's window corner,
// `kernel`, `bias` and `out` start at the tile's first filter.
template <int FB, int P>
void pixel_tile(const ConvGeometry& g, const float* in, const float* kernel, const float* bias, bool relu, float* out) {
  using Row = Eigen::Matrix<float, 1, FB>;
  const Index step = g.sw * g.c, taps = g.kw * g.c, row = g.w * g.c, f = g.f;
  Row acc[P];
  for (int p = 0; p < P; ++p) acc[p].setZero();
  for (Index ky = 0; ky < g.kh; ++ky) {
    const float* x = in + ky * row;
    const float* wt = kernel + ky * taps * f;
    for (Index j = 0; j < taps; ++j) {  // (kx, ch) taps: contiguous in input and kernel
      const Row w = Eigen::Map<const Row>(wt + j * f);
      for (int p = 0; p < P; ++p) acc[p].noalias() += x[j + p * step] * w;
    }
  }
  const Row b = Eigen::Map<const Row>(bias);
  for (int p = 0; p < P; ++p) {
    Row v = acc[p] + b;
    if (relu) v = v.array().max(0.0f).matrix();
    Eigen::Map<Row>(out + p * f) = v;
  }
}

// z (OH * OW, F) = act(the convolution of one image (H, W, C) + bias).
// Output pixels whose window lies inside the image go in register tiles of
// (6, then 2 and 1) pixels x 16 or 32 filters; pixels at a padded border one
// at a time, skipping the taps that fall outside.
template <int F>
void forward_one(const ConvGeometry& g, const float* kernel, const float* bias, bool relu, const float* image,
                 float* z) {
  using Row = Eigen::Matrix<float, 1, F>;
  using WRow = Eigen::Map<const Row>;
  const Index h = g.h, w = g.w, c = g.c, ow = g.ow, kh = g.kh, kwid = g.kw, sx = g.sw, px = g.pad_left;
  const Interior inside(g);
  const Index in_lo = inside.x0, in_hi = inside.x1;
  auto one = [&](Index oy, Index ox) {
    Row acc = Row::Zero();
    for (Index ky = 0; ky < kh; ++ky) {
      const Index iy = oy * g.sh + ky - g.pad_top;
      if (iy < 0 || iy >= h) continue;
      for (Index kx = 0; kx < kwid; ++kx) {
        const Index ix = ox * sx + kx - px;
        if (ix < 0 || ix >= w) continue;
        const float* in = image + (iy * w + ix) * c;
        const float* wt = kernel + (ky * kwid + kx) * c * F;
        for (Index ch = 0; ch < c; ++ch) acc.noalias() += in[ch] * WRow(wt + ch * F);
      }
    }
    Row v = acc + WRow(bias);
    if (relu) v = v.array().max(0.0f).matrix();
    Eigen::Map<Row>(z + (oy * ow + ox) * F) = v;
  };
  for (Index oy = 0; oy < g.oh; ++oy) {
    const Index iy0 = oy * g.sh - g.pad_top;
    if (oy < inside.y0 || oy >= inside.y1 || in_lo >= in_hi) {
      for (Index ox = 0; ox < ow; ++ox) one(oy, ox);
      continue;
    }
    Index ox = 0;
    for (; ox < in_lo; ++ox) one(oy, ox);
    // interior pixels: tiles of 6 pixels, then of 2 and 1 for the rest of the row
    auto tiles = [&]<int P>(std::integral_constant<int, P>) {
      for (; ox + P <= in_hi; ox += P) {
        const float* in = image + (iy0 * w + ox * sx - px) * c;
        float* out = z + (oy * ow + ox) * F;
        for_filter_blocks<F>([&]<int FB>(std::integral_constant<int, FB>, int f0) {
          pixel_tile<FB, P>(g, in, kernel + f0, bias + f0, relu, out + f0);
        });
      }
    };
    tiles(std::integral_constant<int, 6>{});
    tiles(std::integral_constant<int, 2>{});
    tiles(std::integral_constant<int, 1>{});
    for (; ox < ow; ++ox) one(oy, ox);
  }
}

// T taps x FB filters of dW, the register tile (12 accumulators at 6 x 16
// with AVX2, 12 at 6 x 32 with AVX-512):
// dW[t0 + t] += the sum over all output pixels p of x[p's window + off[t]] * dZ[p].
// Every window lies inside the image (padded_geometry).
template <int FB, int T>
void dw_tile(const ConvGeometry& g, const Index* off, const float* image, const float* dz, float* dw) {
  using Row = Eigen::Matrix<float, 1, FB>;
  Row acc[T];
  for (int t = 0; t < T; ++t) acc[t].setZero();
  for (Index oy = 0; oy < g.oh; ++oy) {
    const float* x = image + oy * g.sh * g.w * g.c;
    const float* gz = dz + oy * g.ow * g.f;
    for (Index ox = 0; ox < g.ow; ++ox, x += g.sw * g.c, gz += g.f) {
      const Row d = Eigen::Map<const Row>(gz);
      for (int t = 0; t < T; ++t) acc[t].noalias() += x[off[t]] * d;
    }
  }
  for (int t = 0; t < T; ++t) Eigen::Map<Row>(dw + t * g.f) += acc[t];
}

// dW (K, F) += one image's share, from its dZ (OH * OW, F): for each tap t,
// dW[t] += sum over output pixels p of x[input of p under t] * dZ[p], in
// register tiles of (6, then 3, 2, 1) taps x 16 or 32 filters. Every window
// lies inside the image (padded_geometry).
template <int F>
void dw_one(const ConvGeometry& g, const float* image, const float* dz, float* dw) {
  const Index k = g.patch();
  Index off[DirectConv::kMaxPatch];  // tap t = (ky, kx, ch), as the kernel's rows: its offset in a window
  for (Index ky = 0, t = 0; ky < g.kh; ++ky)
    for (Index kx = 0; kx < g.kw; ++kx)
      for (Index ch = 0; ch < g.c; ++ch) off[t++] = (ky * g.w + kx) * g.c + ch;
  Index t0 = 0;
  auto tiles = [&]<int T>(std::integral_constant<int, T>) {
    for (; t0 + T <= k; t0 += T) {
      for_filter_blocks<F>([&]<int FB>(std::integral_constant<int, FB>, int f0) {
        dw_tile<FB, T>(g, off + t0, image, dz + f0, dw + t0 * F + f0);
      });
    }
  };
  tiles(std::integral_constant<int, 6>{});
  tiles(std::integral_constant<int, 3>{});
  tiles(std::integral_constant<int, 2>{});
  tiles(std::integral_constant<int, 1>{});
}

// Whether some output pixel's window reaches outside the image (same padding,
// or a stride that runs past the last row or column).
bool reaches_outside(const ConvGeometry& g) {
  return g.pad_top > 0 || g.pad_left > 0 || (g.oh - 1) * g.sh + g.kh - g.pad_top > g.h ||
         (g.ow - 1) * g.sw + g.kw - g.pad_left > g.w;
}

// The geometry of the image zero-padded so that every window lies inside it:
// (OH - 1) * SH + KH rows, (OW - 1) * SW + KW columns, no padding left.
ConvGeometry padded_geometry(const ConvGeometry& g) {
  ConvGeometry p = g;
  p.h = (g.oh - 1) * g.sh + g.kh;
  p.w = (g.ow - 1) * g.sw + g.kw;
  p.pad_top = p.pad_left = 0;
  return p;
}

// out (the padded geometry p's image) = image placed at (pad_top, pad_left), zeros around it.
void pad_image(const ConvGeometry& g, const ConvGeometry& p, const float* image, float* out) {
  std::fill_n(out, p.input_size(), 0.0f);
  const Index rows = std::min(g.h, p.h - g.pad_top), cols = std::min(g.w, p.w - g.pad_left);
  for (Index y = 0; y < rows; ++y)
    std::copy_n(image + y * g.w * g.c, cols * g.c, out + ((y + g.pad_top) * p.w + g.pad_left) * g.c);
}

// db (F) += the sum of one image's dz rows (pixels, F).
template <int F>
void sum_rows(Index pixels, const float* dz, float* db) {
  using Row = Eigen::Matrix<float, 1, F>;
  Row acc = Row::Zero();
  for (Index p = 0; p < pixels; ++p) acc += Eigen::Map<const Row>(dz + p * F);
  Eigen::Map<Row>(db) += acc;
}

// masked = dy where the ReLU output y > 0, else 0, for one image's (pixels, F)
// rows; db (F) += the sum of the masked rows. Plain loops over F, which g++
// turns into compares and blends (Eigen's select on a fixed row of 24 was not
// vectorised, and took 63 % of the odd model's conv1 backward).
template <int F>
void mask_and_sum(Index pixels, const float* y, const float* dy, float* masked, float* db) {
  float acc[F] = {};
  for (Index p = 0; p < pixels; ++p, y += F, dy += F, masked += F)
    for (int j = 0; j < F; ++j) {
      const float d = y[j] > 0.0f ? dy[j] : 0.0f;
      masked[j] = d;
      acc[j] += d;
    }
  for (int j = 0; j < F; ++j) db[j] += acc[j];
}

}  // namespace

void DirectConv::infer(const ConvGeometry& g, const ConvWeights& w, const Tensor& x, Tensor& z, Activation act) const {
  const SampleChunks chunks(x.dimension(0), chunk_samples(g));
  const bool relu = act == Activation::ReLU;
  parallel_for(chunks.count(), true, [&](Index c) {
    for (Index s = chunks.first(c); s < chunks.end(c); ++s)
      dispatch(g, [&](auto fixed) {
        forward_one<decltype(fixed)::value>(g, w.kernel, w.bias, relu, x.data() + s * g.input_size(),
                                            z.data() + s * g.output_size());
      });
  });
}


void DirectConv::backward(const ConvGeometry& g, const Tensor& dy, const Tensor* relu_output, float* dkernel,
                          float* dbias) {
  const Index k = g.patch(), f = g.f, pixels = g.pixels();
  const SampleChunks chunks(dy.dimension(0), chunk_samples(g));
  // dW's tiles read every window whole: a padded layer's images are padded
  // into a scratch image per thread first (zeros add nothing to dW).
  const bool pad = reaches_outside(g);
  const ConvGeometry gp = pad ? padded_geometry(g) : g;
  parts_.setZero(chunks.count() * (k + 1), f);
  if (relu_output) masked_.resize(threads() * pixels, f);
  if (pad) padded_.resize(threads() * gp.input_size());
  parallel_for(chunks.count(), true, [&](Index c) {
    float* dw = parts_.data() + c * (k + 1) * f;
    for (Index s = chunks.first(c); s < chunks.end(c); ++s)
      dispatch(g, [&](auto fixed) {
        constexpr int F = decltype(fixed)::value;
        const float* dz = dy.data() + s * g.output_size();
        if (relu_output) {
          float* masked = masked_.data() + omp_get_thread_num() * pixels * f;
          mask_and_sum<F>(pixels, relu_output->data() + s * g.output_size(), dz, masked, dw + k * f);
          dz = masked;
        } else {
          sum_rows<F>(pixels, dz, dw + k * f);
        }
        const float* image = x_.data() + s * g.input_size();
        if (pad) {
          float* scratch = padded_.data() + omp_get_thread_num() * gp.input_size();
          pad_image(g, gp, image, scratch);
          image = scratch;
        }
        dw_one<F>(gp, image, dz, dw);
      });
  });
  MatrixMap dW(dkernel, k, f);
  Eigen::Map<Eigen::RowVectorXf> db(dbias, f);
  dW = parts_.topRows(k);
  db = parts_.row(k);
  for (Index c = 1; c < chunks.count(); ++c) {
    dW += parts_.middleRows(c * (k + 1), k);
    db += parts_.row(c * (k + 1) + k);
  }
}

}  // namespace loom::conv
