// Direct first-layer convolution: the kernels behind
// include/loom/conv/direct_conv.hpp (which explains them), compiled once.

#include "loom/conv/direct_conv.hpp"

#include <omp.h>

#include <algorithm>
#include <string>
#include <type_traits>
#include <vector>

#include "direct_dw_avx512.hpp"
#include "direct_forward_avx512.hpp"
#include "direct_tap_tiles.hpp"
#include "loom/error.hpp"
#include "loom/layers/maxpool_halves.hpp"
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

#if defined(__AVX512F__)
constexpr int kVec = 16;  // floats per vector register
#else
constexpr int kVec = 8;
#endif
constexpr int vectors(int fb) { return (fb + kVec - 1) / kVec; }

// Calls tile(std::integral_constant<int, FB>, f0) over F filters in blocks
// of FB: 2 vectors at a time (32 filters with AVX-512, 16 with AVX2), then
// one block of the rest (8, 16 or 24). Every filter's sums are the same
// whichever block holds it.
template <int F, typename Tile>
void for_filter_blocks(Tile&& tile) {
  constexpr int kWide = 2 * kVec;
  int f0 = 0;
  for (; f0 + kWide <= F; f0 += kWide) tile(std::integral_constant<int, kWide>{}, f0);
  if constexpr (F % kWide != 0) tile(std::integral_constant<int, F % kWide>{}, f0);
}

// Pixels per forward tile and taps per dW tile for a block of FB filters:
// about 12 accumulators (forward) or 18 (dW) of the 16 or 32 vector
// registers, enough independent sums to keep both FMA pipes busy. The
// AVX-512 intrinsics tile (direct_forward_avx512.hpp) holds more: 13 pixels
// of 32 filters are 26 sums, with the 2 kernel vectors and the broadcast 29
// of the 32 registers, and 26 output columns (a 28x28 image's valid 3x3
// layer) are two tiles with no tail. One thread, the seed's conv1 forward
// went from 134 to 143 GFLOP/s, odd/conv1 from 104 to 130 (6 pixels:
// 134 and 119; loom_bench --threads=1 --benchmark_filter=
// '^suite/(seed|odd)/conv1/forward', builds alternating). The portable tile
// spills its sums at 13 (the seed's conv1 30 % slower), so it keeps 6.
template <int FB>
constexpr int kTilePixels = vectors(FB) == 1 ? 12 : 6;
template <int FB>
constexpr int kWideTilePixels = vectors(FB) == 1 ? 12 : 13;
template <int FB>
constexpr int kTileTaps = kVec == 16 ? (vectors(FB) == 1 ? 12 : 9) : 6;

// The window's shape when it is known at compile time: KH rows of KWC
// contiguous values (KW * C); 0 when it is not (read from the geometry).
template <int KH, int KWC>
struct Window {
  static constexpr int kRows = KH, kRowTaps = KWC;
  static Index rows(const ConvGeometry& g) { return KH ? KH : g.kh; }
  static Index row_taps(const ConvGeometry& g) { return KWC ? KWC : g.kw * g.c; }
};

// Calls body(Window<...>{}) with the layer's window shape fixed at compile
// time where it is a common first layer's (3x3 on grey, 3x3 and 5x5 on
// colour), so the tap loops unroll; else with it read at run time.
template <typename Body>
void dispatch_window(const ConvGeometry& g, Body&& body) {
  if (g.kh == 3 && g.kw * g.c == 3) body(Window<3, 3>{});
  else if (g.kh == 3 && g.kw * g.c == 9) body(Window<3, 9>{});
  else if (g.kh == 5 && g.kw * g.c == 15) body(Window<5, 15>{});
  else body(Window<0, 0>{});
}

// Filters rounded up to whole vector registers: the forward tiles compute
// this many, from a kernel and bias padded with zeros (pad_filters), and
// store the layer's own. A block of 24 filters had gone through Eigen as
// three 8-float vectors (a fixed size of 24 is not a multiple of 16), half
// the AVX-512 width.
constexpr int padded_filters(int f) { return (f + kVec - 1) / kVec * kVec; }

// P output pixels of a row times FB filters, the register tile: P * FB
// accumulators (see kTilePixels), every tap added while they stay in
// registers, then bias and ReLU as they are stored, the first S of the FB
// filters (S < FB: the padded block at the end). `in` is the first pixel's
// window corner; `kernel` (K, kf) and `bias` start at the tile's first
// filter, `out` (rows of f) too. Every window lies inside the image.
template <typename Win, int FB, int P, int S>
void pixel_tile(const ConvGeometry& g, const float* in, const float* kernel, Index kf, const float* bias,
                const ChannelNormalization& normalize, bool relu, float* out) {
  using Row = Eigen::Matrix<float, 1, FB>;
  const Index step = g.sw * g.c, taps = Win::row_taps(g), kh = Win::rows(g), row = g.w * g.c, f = g.f;
  Row acc[P];
  for (int p = 0; p < P; ++p) acc[p].setZero();
  for (Index ky = 0; ky < kh; ++ky) {
    const float* x = in + ky * row;
    const float* wt = kernel + ky * taps * kf;
    for (Index j = 0; j < taps; ++j) {  // (kx, ch) taps: contiguous in input and kernel
      const Row w = Eigen::Map<const Row>(wt + j * kf);
      for (int p = 0; p < P; ++p) acc[p].noalias() += x[j + p * step] * w;
    }
  }
  const Row b = Eigen::Map<const Row>(bias);
  for (int p = 0; p < P; ++p) {
    Row v = acc[p] + b;
    if (normalize)
      for (int k = 0; k < S; ++k) v[k] = normalize(v[k], k);
    if (relu) v = v.array().max(0.0f).matrix();
    Eigen::Map<Eigen::Matrix<float, 1, S>>(out + p * f) = v.template head<S>();
  }
}

// pixel_tile's values from the AVX-512 intrinsics tile (no normalize), the
// first S of its FB filters stored. Only AVX-512 builds call it (row_of).
template <typename Win, int FB, int P, int S>
void wide_tile(const ConvGeometry& g, const float* in, const float* kernel, Index kf, const float* bias, bool relu,
               float* out) {
#if defined(__AVX512F__)
  constexpr auto last = static_cast<__mmask16>((1u << (S - kVec * (vectors(FB) - 1))) - 1);
  avx512::pixel_tile<Win::kRows, Win::kRowTaps, vectors(FB), P>(g, in, kernel, kf, bias, last, relu, out);
#else
  pixel_tile<Win, FB, P, S>(g, in, kernel, kf, bias, {}, relu, out);
#endif
}

// Output rows [oy0, oy1) of act(the convolution of one image + bias) into z
// ((oy1 - oy0) * OW, F), the image in geometry g with every window inside it
// (padded_geometry), the kernel (K, padded_filters(F)) and bias padded: each
// row of output pixels in register tiles of kWideTilePixels (AVX-512) and
// kTilePixels, then 2 and 1 pixels, one block of filters at a time. A row's
// values do not depend on which rows are computed with it.
template <typename Win, int F>
void forward_rows(const ConvGeometry& g, const float* kernel, const float* bias, const ChannelNormalization& normalize,
                  bool relu, const float* image, Index oy0, Index oy1, float* z) {
  constexpr int kF = padded_filters(F);
  for (Index oy = oy0; oy < oy1; ++oy) {
    const float* in_row = image + oy * g.sh * g.w * g.c;
    float* out_row = z + (oy - oy0) * g.ow * F;
    for_filter_blocks<kF>([&]<int FB>(std::integral_constant<int, FB>, int f0) {
      // Tiles of P pixels along the row while they fit: the portable tile,
      // or the intrinsics one (kWide), which gives the same bits; normalize
      // (inference with a folded BatchNormalization) stays portable.
      auto tiles = [&]<int P, int S, bool kWide>(Index& ox) {
        for (; ox + P <= g.ow; ox += P) {
          const float* in = in_row + ox * g.sw * g.c;
          float* out = out_row + ox * F + f0;
          if constexpr (kWide)
            wide_tile<Win, FB, P, S>(g, in, kernel + f0, kF, bias + f0, relu, out);
          else
            pixel_tile<Win, FB, P, S>(g, in, kernel + f0, kF, bias + f0, normalize.from(f0), relu, out);
        }
      };
      auto row = [&]<int S, bool kWide>() {
        Index ox = 0;
        if constexpr (kWide) tiles.template operator()<kWideTilePixels<FB>, S, true>(ox);
        tiles.template operator()<kTilePixels<FB>, S, kWide>(ox);
        if constexpr (kTilePixels<FB> > 6) tiles.template operator()<6, S, kWide>(ox);
        tiles.template operator()<2, S, kWide>(ox);
        tiles.template operator()<1, S, kWide>(ox);
      };
      auto row_of = [&]<int S>() {
#if defined(__AVX512F__)
        if (!normalize) return row.template operator()<S, true>();
#endif
        row.template operator()<S, false>();
      };
      if (f0 + FB <= F) row_of.template operator()<FB>();
      else if constexpr (kF != F) row_of.template operator()<FB - (kF - F)>();
    });
  }
}

// off[t] = tap t's offset in a window, for t = (ky, kx, ch) in the kernel's row order.
void window_offsets(const ConvGeometry& g, Index* off) {
  for (Index ky = 0, t = 0; ky < g.kh; ++ky)
    for (Index kx = 0; kx < g.kw; ++kx)
      for (Index ch = 0; ch < g.c; ++ch) off[t++] = (ky * g.w + kx) * g.c + ch;
}

// T taps x FB filters of dW, the register tile (see kTileTaps):
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
// register tiles of kTileTaps (9 when K is a multiple of 9: 3x3 windows),
// then 6, 3, 2 and 1 taps, one block of filters at a time. Every window lies
// inside the image (padded_geometry).
template <int F>
void dw_one(const ConvGeometry& g, const Index* off, const float* image, const float* dz, float* dw) {
  for_filter_blocks<F>([&]<int FB>(std::integral_constant<int, FB>, int f0) {
    for_tap_tiles<kTileTaps<FB>>(g.patch(), [&]<int T>(std::integral_constant<int, T>, Index t0) {
      dw_tile<FB, T>(g, off + t0, image, dz + f0, dw + t0 * F + f0);
    });
  });
}

// Whether some output pixel's window reaches outside the image (same padding,
// or a stride that runs past the last row or column).
bool reaches_outside(const ConvGeometry& g) {
  return g.pad_top > 0 || g.pad_left > 0 || (g.oh - 1) * g.sh + g.kh - g.pad_top > g.h ||
         (g.ow - 1) * g.sw + g.kw - g.pad_left > g.w;
}

// The geometry of the image zero-padded (or cropped) so that every window
// lies inside it: (OH - 1) * SH + KH rows, (OW - 1) * SW + KW columns, no
// padding left.
ConvGeometry padded_geometry(const ConvGeometry& g) {
  if (!reaches_outside(g)) return g;
  ConvGeometry p = g;
  p.h = (g.oh - 1) * g.sh + g.kh;
  p.w = (g.ow - 1) * g.sw + g.kw;
  p.pad_top = p.pad_left = 0;
  return p;
}

// out (the padded geometry p's image) = image placed at (pad_top, pad_left),
// zeros around it; a plain copy when g needs no padding.
void pad_image(const ConvGeometry& g, const ConvGeometry& p, const float* image, float* out) {
  if (!reaches_outside(g)) {
    std::copy_n(image, g.input_size(), out);
    return;
  }
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

// out (pixels, padded_filters(F)) = dy (pixels, F), masked where the ReLU
// output y is not positive when y is given, zeros in the padding; db (F) +=
// the sum of the rows. The mask is a plain loop over F, which g++ turns into
// compares and blends (Eigen's select on a fixed row of 24 was not
// vectorised); the sum is a fixed-size Eigen row, which stays in registers
// (a float[F] sum had gone through the stack every pixel, a store-to-load
// chain that made this pass twice as slow as dW's). Masking inside dW's
// tiles instead, as the rows are read, was slower still (vgg conv1 backward
// 590 -> 1,190 us).
// Not inlined: inside backward's loop, with its two instances, its sum and
// constants were spilled to the stack (seed conv1 backward 10 % slower).
template <int F, bool kMask>
[[gnu::noinline]] void mask_and_sum(Index pixels, const float* y, const float* dy, float* out, float* db) {
  constexpr int kF = padded_filters(F);
  using Row = Eigen::Matrix<float, 1, F>;
  Row acc = Row::Zero();
  for (Index p = 0; p < pixels; ++p, y += kMask ? F : 0, dy += F, out += kF) {
    for (int j = 0; j < F; ++j) out[j] = !kMask || y[j] > 0.0f ? dy[j] : 0.0f;
    for (int j = F; j < kF; ++j) out[j] = 0.0f;
    acc += Eigen::Map<const Row>(out);
  }
  Eigen::Map<Row>(db) += acc;
}

// The kernel (K, F) and bias with their filters padded with zeros to
// padded_filters(F), held in storage; w itself when F is whole vectors.
ConvWeights pad_filters(const ConvGeometry& g, const ConvWeights& w, std::vector<float>& storage) {
  const Index f = g.f, fp = padded_filters(static_cast<int>(f)), k = g.patch();
  if (fp == f) return w;
  storage.assign(static_cast<std::size_t>((k + 1) * fp), 0.0f);
  for (Index t = 0; t < k; ++t) std::copy_n(w.kernel + t * f, f, storage.data() + t * fp);
  std::copy_n(w.bias, f, storage.data() + k * fp);
  return {storage.data(), storage.data() + k * fp};
}

}  // namespace

// Every image goes through the tiles padded (or cropped) to padded_geometry,
// so no output pixel needs a border case: a same-padded 32x32 layer had
// computed its 124 border pixels one at a time, tap by tap.
void DirectConv::infer(const ConvGeometry& g, const ConvWeights& w, const Tensor& x, Tensor& z, Activation act,
                       const ChannelNormalization& normalize) const {
  const ConvGeometry gp = padded_geometry(g);
  for_each_padded_image(g, w, x, nullptr, [&](Index s, const float* image, const ConvWeights& wp, std::vector<float>&) {
    compute(gp, wp, image, 0, g.oh, z.data() + s * g.output_size(), act, normalize);
  });
}

void DirectConv::infer_pooled(const ConvGeometry& g, const ConvWeights& w, const Tensor& x, Tensor& pooled,
                              const ChannelNormalization& normalize) const {
  const Index per_out = g.pooled_size();
  pooled.resize(x.dimension(0), g.oh / 2, g.ow / 2, g.f);
  for_each_padded_image(g, w, x, nullptr,
                        [&](Index s, const float* image, const ConvWeights& wp, std::vector<float>& rows) {
    pool_rows(g, wp, image, rows, pooled.data() + s * per_out, nullptr, normalize);
  });
}

// Calls fn(sample, image padded to padded_geometry, padded weights, thread
// scratch) for each image of x, chunk by chunk in parallel. The padded
// images go to `kept` when given (forward keeps them for dW, which then
// reads every window whole); else to a thread buffer, and only when the
// image needs padding.
template <typename Fn>
void DirectConv::for_each_padded_image(const ConvGeometry& g, const ConvWeights& w, const Tensor& x, float* kept,
                                       Fn&& fn) {
  const ConvGeometry gp = padded_geometry(g);
  const bool pad = reaches_outside(g);
  std::vector<float> storage;
  const ConvWeights wp = pad_filters(g, w, storage);
  const SampleChunks chunks(x.dimension(0), chunk_samples(g));
  struct Scratch {
    std::vector<float> image, rows;
  };
  parallel_for_with<Scratch>(chunks.count(), true, [&](Index c, Scratch& scratch) {
    for (Index s = chunks.first(c); s < chunks.end(c); ++s) {
      const float* image = x.data() + s * g.input_size();
      if (kept) {
        float* padded = kept + s * gp.input_size();
        pad_image(g, gp, image, padded);
        image = padded;
      } else if (pad) {
        scratch.image.resize(static_cast<std::size_t>(gp.input_size()));
        pad_image(g, gp, image, scratch.image.data());
        image = scratch.image.data();
      }
      fn(s, image, wp, scratch.rows);
    }
  });
}

// One padded image's ReLU output (of `normalize`'s map, when given), two rows
// at a time into `rows` (in L1), each pair pooled in 2x2 windows with
// MaxPool2D's own kernel into pooled (OH/2, OW/2, F), and the winning taps
// into won unless it is null.
void DirectConv::pool_rows(const ConvGeometry& g, const ConvWeights& wp, const float* image, std::vector<float>& rows,
                           float* pooled, std::int32_t* won, const ChannelNormalization& normalize) {
  const ConvGeometry gp = padded_geometry(g);
  const Index pw = g.ow / 2, row = pw * g.f;
  rows.resize(static_cast<std::size_t>(2 * g.ow * g.f));
  for (Index py = 0; py < g.oh / 2; ++py) {
    compute(gp, wp, image, 2 * py, 2 * py + 2, rows.data(), Activation::ReLU, normalize);
    if (won)
      maxpool_halves::pool_halves<true>(rows.data(), pooled + py * row, won + py * row, 1, pw, g.ow, g.f);
    else
      maxpool_halves::pool_halves<false>(rows.data(), pooled + py * row, nullptr, 1, pw, g.ow, g.f);
  }
}

// Keeps x's images for dW: x itself when every window lies inside the image
// (the caller keeps x until backward, as for the other algorithms), and
// returns null; else padded_, sized for them padded, which it returns for
// forward to fill. A copy of x had been 6 % of the seed's conv1 forward.
float* DirectConv::keep_input(const ConvGeometry& g, const Tensor& x) {
  kept_batch_ = x.dimension(0);
  if (!reaches_outside(g)) {
    kept_ = x.data();
    return nullptr;
  }
  const ConvGeometry gp = padded_geometry(g);
  const Index n = x.dimension(0);
  if (padded_.dimension(0) != n || padded_.size() != n * gp.input_size()) padded_.resize(n, gp.h, gp.w, gp.c);
  kept_ = padded_.data();
  return padded_.data();
}

void DirectConv::forward(const ConvGeometry& g, const ConvWeights& w, const Tensor& x, Tensor& z, Activation act) {
  const ConvGeometry gp = padded_geometry(g);
  for_each_padded_image(g, w, x, keep_input(g, x), [&](Index s, const float* image, const ConvWeights& wp,
                                                        std::vector<float>&) {
    compute(gp, wp, image, 0, g.oh, z.data() + s * g.output_size(), act, {});
  });
}

// Two output rows at a time into a thread's scratch (in L1), then their 2x2
// windows with MaxPool2D's own kernel: the same values and winners as the
// layers apart, without writing the full map and reading it back.
void DirectConv::forward_pooled(const ConvGeometry& g, const ConvWeights& w, const Tensor& x, Tensor& pooled) {
  const Index n = x.dimension(0), per_out = g.pooled_size();
  pooled.resize(n, g.oh / 2, g.ow / 2, g.f);
  won_.resize(static_cast<std::size_t>(n * per_out));
  for_each_padded_image(g, w, x, keep_input(g, x), [&](Index s, const float* image, const ConvWeights& wp,
                                                        std::vector<float>& rows) {
    pool_rows(g, wp, image, rows, pooled.data() + s * per_out, won_.data() + s * per_out);
  });
}

void DirectConv::compute(const ConvGeometry& gp, const ConvWeights& w, const float* image, Index oy0, Index oy1,
                         float* z, Activation act, const ChannelNormalization& normalize) {
  const bool relu = act == Activation::ReLU;
  dispatch(gp, [&](auto filters) {
    dispatch_window(gp, [&]<typename Win>(Win) {
      forward_rows<Win, decltype(filters)::value>(gp, w.kernel, w.bias, normalize, relu, image, oy0, oy1, z);
    });
  });
}

// dW's tiles read dz in rows of padded_filters(F) (a masked or padded copy of
// dy, made image by image while it is in cache; dy itself when F is whole
// vectors and the layer has no ReLU) and sum into rows of as many. `relu`:
// whether the layer has a ReLU, which decides the tiles; an image's gradient
// then either comes with ReLU's output, to mask it by, or is masked already.
template <typename ImageOf>
void DirectConv::backward_images(const ConvGeometry& g, Index n, bool relu, float* dkernel, float* dbias,
                                 ImageOf&& image_of) {
  const Index k = g.patch(), f = g.f, fp = padded_filters(static_cast<int>(f));
  if (n != kept_batch_)
    throw UsageError("direct convolution: backward of " + std::to_string(n) + " samples after a forward of " +
                     std::to_string(kept_batch_));
  const ConvGeometry gx = padded_geometry(g);  // of the kept input
  const SampleChunks chunks(n, chunk_samples(g));
  parts_.setZero(chunks.count() * (k + 1), fp);
  Index off[kMaxPatch];
  window_offsets(gx, off);
  const Index pixels = g.pixels();
  ConvGeometry gp = gx;  // dz in rows of fp
  gp.f = fp;
#if defined(__AVX512F__)
  // The AVX-512 tiles (src/direct_dw_avx512.hpp) when they read each row of
  // dy at most 3 times (K <= 27): ReLU's mask fused into them, db summed in
  // the first, no copy of dy. Else the mask (or padding) pass and portable
  // tiles below: for photo conv1 (K = 75) the fused tiles were 35 % slower,
  // and so were these tiles reading the masked copy (18 %).
  const bool avx512_tiles = k <= 27;
#else
  const bool avx512_tiles = false;
#endif
  const bool copy = !avx512_tiles && (relu || fp != f);
  if (copy) masked_.resize(threads() * pixels, fp);
  parallel_for_with<std::vector<float>>(chunks.count(), true, [&](Index c, std::vector<float>& scratch) {
    float* dw = parts_.data() + c * (k + 1) * fp;
    for (Index s = chunks.first(c); s < chunks.end(c); ++s) {
      const ImageGradient d = image_of(s, scratch);
      const float* image = kept_ + s * gx.input_size();
#if defined(__AVX512F__)
      if (avx512_tiles) {
        avx512::dw_one(gx, fp, off, image, d.dy, d.relu_output, d.streamed, dw, dw + k * fp);
        continue;
      }
#endif
      dispatch(g, [&](auto fixed) {
        constexpr int F = decltype(fixed)::value;
        const float* dz = d.dy;
        if (copy) {
          float* rows = masked_.data() + omp_get_thread_num() * pixels * fp;
          if (d.relu_output)
            mask_and_sum<F, true>(pixels, d.relu_output, dz, rows, dw + k * fp);
          else
            mask_and_sum<F, false>(pixels, nullptr, dz, rows, dw + k * fp);
          dz = rows;
        } else {
          sum_rows<F>(pixels, dz, dw + k * fp);
        }
        dw_one<padded_filters(F)>(gp, off, image, dz, dw);
      });
    }
  });
  sum_parts(k, f, chunks.count(), dkernel, dbias);
}

void DirectConv::backward(const ConvGeometry& g, const Tensor& dy, const Tensor* relu_output, float* dkernel,
                          float* dbias) {
  const Index out = g.output_size();
  backward_images(g, dy.dimension(0), relu_output != nullptr, dkernel, dbias,
                  [&](Index s, std::vector<float>&) -> ImageGradient {
                    return {dy.data() + s * out, relu_output ? relu_output->data() + s * out : nullptr, true};
                  });
}

// Each image's dz is made from the pooled gradient while it is in cache:
// dpool where the tap won and the maximum was positive (ReLU's mask: at the
// winner the map's value is the maximum), 0 elsewhere: the values the pool's
// backward and ReLU's mask give the layers apart. The dW tiles then read it
// as they read a masked dy, so the sums are theirs too, bit for bit.
void DirectConv::backward_pooled(const ConvGeometry& g, const Tensor& dpool, const Tensor& pooled, float* dkernel,
                                 float* dbias) {
  const Index ph = g.oh / 2, pw = g.ow / 2, per_out = g.pooled_size();
  const bool leftover = 2 * ph != g.oh || 2 * pw != g.ow;  // an odd last row or column: no window, dz 0
  backward_images(g, dpool.dimension(0), true, dkernel, dbias, [&](Index s, std::vector<float>& dz) -> ImageGradient {
    dz.resize(static_cast<std::size_t>(g.output_size()));
    if (leftover) std::fill(dz.begin(), dz.end(), 0.0f);
    maxpool_halves::route_halves(dz.data(), dpool.data() + s * per_out, won_.data() + s * per_out, ph, pw, g.ow, g.f,
                                 pooled.data() + s * per_out);
    return {dz.data(), nullptr, false};
  });
}

// dW (K, F) and db (F) = the sum of the chunks' parts, in chunk order.
void DirectConv::sum_parts(Index k, Index f, Index chunks, float* dkernel, float* dbias) const {
  sum_parts_in_order(parts_, k + 1, chunks, MatrixMap(dkernel, k, f));
  Eigen::Map<Eigen::RowVectorXf> db(dbias, f);
  db = parts_.row(k).head(f);
  for (Index c = 1; c < chunks; ++c) db += parts_.row(c * (k + 1) + k).head(f);
}

}  // namespace loom::conv
