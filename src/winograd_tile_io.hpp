#pragma once
// Moving tiles in and out, for Winograd F(m x m, 3 x 3): vectors of L lanes
// copied, stored, added and zeroed; a tile read from an image (plain, under
// ReLU's mask, or routed through a 2x2 pool's winning taps) or added back
// onto one; a tile's vectors to and from slabs; the finished output tile
// stored into the map or pooled into its windows.
//
// Part of the Winograd convolution's implementation, included by
// src/winograd_conv.cpp alone: its names live in that file's anonymous
// namespace, one translation unit, so the compiler inlines across the parts
// as it did when they were one file.

#include <cstdint>
#include <cstring>

#ifdef __AVX__
#include <immintrin.h>
#endif

#include "loom/conv/conv_geometry.hpp"
#include "loom/conv/winograd_transforms.hpp"
#include "loom/error.hpp"
#include "loom/layers/maxpool_halves.hpp"
#include "loom/tensor.hpp"

namespace loom::conv {
namespace {

constexpr int L = winograd::kLanes;  // floats per vector of a tile

// A tile's vectors are L lanes wide; the last block of channels may fill
// fewer (`lanes`), and the rest of its vector is zero. Full vectors are
// copied as whole vectors (copy_vector): a copy of run-time length becomes
// `rep movs`, whose start-up cost was most of the transforms' time; g++
// turned the equivalent element loop into scalar loads and inserts (a third
// of conv2's forward, perf annotate), and a 64-byte memcpy into four
// 16-byte moves. A partial vector (channel counts that are not a multiple
// of 16, such as 24 or 40) is one masked load or store on AVX-512: the
// element loops it replaces were scalar, compare-and-branch per lane, and
// half of such a layer's forward (perf annotate of odd/conv2). Masked-off
// lanes are neither read nor written, so nothing past the channels is touched.
// With AVX-512 a vector is one 512-bit move (two 256-bit moves had been:
// the seed's conv2 forward 348-377 -> 331-354 us, binaries alternating,
// five rounds).
inline void copy_vector(const float* __restrict src, float* __restrict dst) {
#if defined(__AVX512F__)
  static_assert(L == 16);
  _mm512_storeu_ps(dst, _mm512_loadu_ps(src));
#elif defined(__AVX__)
  static_assert(L == 16);
  _mm256_storeu_ps(dst, _mm256_loadu_ps(src));
  _mm256_storeu_ps(dst + 8, _mm256_loadu_ps(src + 8));
#else
  std::memcpy(dst, src, L * sizeof(float));
#endif
}
#ifdef __AVX512F__
inline __mmask16 lane_mask(Index lanes) { return static_cast<__mmask16>((1u << lanes) - 1u); }
#endif
// dst (L values) = src's first `lanes` values, then zeros.
inline void copy_lanes(const float* __restrict src, float* __restrict dst, Index lanes) {
  if (lanes == L) {
    copy_vector(src, dst);
    return;
  }
#ifdef __AVX512F__
  _mm512_storeu_ps(dst, _mm512_maskz_loadu_ps(lane_mask(lanes), src));
#else
  for (Index k = 0; k < L; ++k) dst[k] = k < lanes ? src[k] : 0.0f;
#endif
}
// dst's first `lanes` values = src's (L values); dst's others untouched.
inline void store_lanes(const float* __restrict src, float* __restrict dst, Index lanes) {
  if (lanes == L) {
    copy_vector(src, dst);
    return;
  }
#ifdef __AVX512F__
  _mm512_mask_storeu_ps(dst, lane_mask(lanes), _mm512_loadu_ps(src));
#else
  for (Index k = 0; k < lanes; ++k) dst[k] = src[k];
#endif
}
// dst's first `lanes` values += src's.
inline void add_lanes(const float* __restrict src, float* __restrict dst, Index lanes) {
#ifdef __AVX512F__
  const __mmask16 m = lane_mask(lanes);
  _mm512_mask_storeu_ps(dst, m, _mm512_add_ps(_mm512_maskz_loadu_ps(m, dst), _mm512_loadu_ps(src)));
#else
  for (Index k = 0; k < lanes; ++k) dst[k] += src[k];
#endif
}
inline void zero_lanes(float* dst) {
#ifdef __AVX512F__
  _mm512_storeu_ps(dst, _mm512_setzero_ps());
#else
  for (int k = 0; k < L; ++k) dst[k] = 0.0f;
#endif
}

// Tile (R x R vectors) at (y0, x0) of an (H, W, C) image, lanes [c0, c0 +
// lanes) of each pixel; zeros outside the image.
template <int R>
inline void load_image_tile(const float* image, Index h, Index w, Index ch, Index y0, Index x0, Index c0,
                            Index lanes, float* tile) {
  for (int i = 0; i < R; ++i) {
    const Index y = y0 + i;
    for (int j = 0; j < R; ++j) {
      const Index x = x0 + j;
      float* dst = tile + (i * R + j) * L;
      if (y < 0 || y >= h || x < 0 || x >= w)
        zero_lanes(dst);
      else
        copy_lanes(image + (y * w + x) * ch + c0, dst, lanes);
    }
  }
}
// load_image_tile of dy, masked where ReLU's output y (an image of the
// same geometry) is not positive: dz, the gradient before a fused ReLU.
// With AVX-512 each pixel's vector is one load under the mask of y > 0 (a
// compare into a mask register); elsewhere both tiles are loaded and
// selected. The same values either way.
template <int R>
inline void load_masked_image_tile(const float* dy, const float* y, Index h, Index w, Index ch, Index y0, Index x0,
                                   Index c0, Index lanes, float* tile) {
#ifdef __AVX512F__
  const __mmask16 in_lanes = lane_mask(lanes);
  for (int i = 0; i < R; ++i)
    for (int j = 0; j < R; ++j) {
      const Index yy = y0 + i, xx = x0 + j;
      float* dst = tile + (i * R + j) * L;
      if (yy < 0 || yy >= h || xx < 0 || xx >= w) {
        zero_lanes(dst);
        continue;
      }
      const Index at = (yy * w + xx) * ch + c0;
      const __mmask16 kept =
          _mm512_mask_cmp_ps_mask(in_lanes, _mm512_maskz_loadu_ps(in_lanes, y + at), _mm512_setzero_ps(), _CMP_GT_OQ);
      _mm512_storeu_ps(dst, _mm512_maskz_loadu_ps(kept, dy + at));
    }
#else
  alignas(64) float kept[R * R * L];
  load_image_tile<R>(dy, h, w, ch, y0, x0, c0, lanes, tile);
  load_image_tile<R>(y, h, w, ch, y0, x0, c0, lanes, kept);
  for (int k = 0; k < R * R * L; ++k) tile[k] = kept[k] > 0.0f ? tile[k] : 0.0f;
#endif
}
// Adds a tile back onto the image pixels it covers (those inside it).
template <int R>
inline void add_image_tile(const float* tile, float* image, Index h, Index w, Index ch, Index y0, Index x0,
                           Index c0, Index lanes) {
  for (int i = 0; i < R; ++i) {
    const Index y = y0 + i;
    if (y < 0 || y >= h) continue;
    for (int j = 0; j < R; ++j) {
      const Index x = x0 + j;
      if (x < 0 || x >= w) continue;
      float* px = image + (y * w + x) * ch + c0;
      add_lanes(tile + (i * R + j) * L, px, lanes);
    }
  }
}
// The a*a vectors of one tile in a (a*a, rows, cols) buffer: slab xi starts
// at xi * slab, the tile's lanes at `at` within it.
// (Count vectors: the a*a of a tile, or the 9 taps of a kernel.)
template <int Count>
inline void load_slabs(const float* buf, Index slab, Index at, Index lanes, float* tile) {
  for (int xi = 0; xi < Count; ++xi) copy_lanes(buf + xi * slab + at, tile + xi * L, lanes);
}
template <int Count>
inline void store_slabs(const float* tile, float* buf, Index slab, Index at, Index lanes) {
  for (int xi = 0; xi < Count; ++xi) store_lanes(tile + xi * L, buf + xi * slab + at, lanes);
}

// The output map's tiles, m x m (M): dz routed in after a pooled forward,
// the finished tile stored out or pooled.

// The m x m tile of dz at output pixel (y0, x0), both even, after a pooled
// forward: a pixel under a 2x2 window gets the window's gradient where its
// tap won (and, given the maxima, where they are positive), else 0; pixels
// under no window (an odd last row or column, or past the map) 0. The
// values MaxPool2D's backward and ReLU's mask give (maxpool_halves::route_window).
template <int M>
inline void load_routed_tile(const float* dpool, const float* maxima, const std::int32_t* won,
                             const ConvGeometry& g, Index y0, Index x0, Index f0, Index lanes, float* tile) {
#ifdef __AVX512F__
  const Index ph = g.oh / 2, pw = g.ow / 2;
  for (int a = 0; a < M / 2; ++a)
    for (int b = 0; b < M / 2; ++b) {
      float* at = tile + (2 * a * M + 2 * b) * L;
      float* to[4] = {at, at + L, at + M * L, at + M * L + L};
      const Index py = y0 / 2 + a, px = x0 / 2 + b;
      if (py >= ph || px >= pw) {
        for (float* p : to) zero_lanes(p);
        continue;
      }
      const Index i = (py * pw + px) * g.f + f0;
      maxpool_halves::route_window(dpool + i, won + i, maxima ? maxima + i : nullptr, lane_mask(lanes), to);
    }
#else
  (void)dpool, (void)maxima, (void)won, (void)g, (void)y0, (void)x0, (void)f0, (void)lanes, (void)tile;
  throw UsageError("Winograd: a pooled backward needs AVX-512 (WinogradConv::pools)");
#endif
}
// The finished tile's pixels inside the output into the (OH, OW, F) image at (y0, x0).
template <int M>
inline void store_output_tile(const float* tile, float* image, const ConvGeometry& g, Index y0, Index x0, Index f0,
                              Index lanes) {
  for (int i = 0; i < M && y0 + i < g.oh; ++i)
    for (int j = 0; j < M && x0 + j < g.ow; ++j)
      store_lanes(tile + (i * M + j) * L, image + ((y0 + i) * g.ow + x0 + j) * g.f + f0, lanes);
}
// The finished tile's 2x2 windows that lie inside the output, pooled into
// the (OH/2, OW/2, F) image, with their taps into won when not null.
template <int M>
inline void pool_output_tile(const float* tile, float* pooled, std::int32_t* won, const ConvGeometry& g, Index y0,
                             Index x0, Index f0, Index lanes) {
#ifdef __AVX512F__
  const Index ph = g.oh / 2, pw = g.ow / 2;
  for (int a = 0; a < M / 2 && y0 / 2 + a < ph; ++a)
    for (int b = 0; b < M / 2 && x0 / 2 + b < pw; ++b) {
      const float* at = tile + (2 * a * M + 2 * b) * L;
      const float* from[4] = {at, at + L, at + M * L, at + M * L + L};
      const Index out = ((y0 / 2 + a) * pw + x0 / 2 + b) * g.f + f0;
      if (won)
        maxpool_halves::pool_window<true>(from, lane_mask(lanes), pooled + out, won + out);
      else
        maxpool_halves::pool_window<false>(from, lane_mask(lanes), pooled + out, nullptr);
    }
#else
  (void)tile, (void)pooled, (void)won, (void)g, (void)y0, (void)x0, (void)f0, (void)lanes;
  throw UsageError("Winograd: a pooled output needs AVX-512 (WinogradConv::pools)");
#endif
}

}  // namespace
}  // namespace loom::conv
