#pragma once
// The direct convolution's weight gradient with AVX-512, ReLU's mask fused
// (src/direct_conv.cpp; include/loom/conv/direct_conv.hpp explains the
// algorithm). The portable path masks dy in a pass of its own, writing a
// masked copy of every image's rows, and that pass took a third of a first
// layer's backward: it streams y and dy from L3 and does no arithmetic. Here
// each row of dy is loaded plainly, the lanes where y > 0 make a mask
// register, and the multiply-adds (and db's adds) leave their sums as they
// are in the other lanes. (The same fusion through Eigen, with a select,
// doubled the time: it spilled the tile's sums.) dy had been loaded under
// the mask, zeros elsewhere: a masked load cannot start before its mask is
// known, so every dy read waited for y's read and compare, and the first
// layers' backward ran 12-20 % slower (docs/benchmarks.md, 2026-12-05).
// Leaving a sum alone is adding x * 0 to it: the same bits, as no sum is
// ever -0 (they start at +0, and +0 + -0 = +0), for every finite input.
// Sums are added in the same order as the portable path's.

#if defined(__AVX512F__)

#include <immintrin.h>

#include "direct_tap_tiles.hpp"
#include "loom/conv/conv_geometry.hpp"

namespace loom::conv::avx512 {

// T taps x V vectors of 16 filters of dW, in registers (T * V sums, plus V
// for db when kBias):
// dW[t] += sum over output pixels p of x[p's window + off[t]] * dz[p], dz = dy
// where ReLU's output y > 0 (kMask), or dy itself, masked already. dy
// and y rows hold g.f values (the layer's filters), starting at the block's
// first; dw rows hold fp. `last`: the lanes of the block's last vector that
// are filters. kAhead: whether dy and y stream from a batch's maps (not a
// thread's scratch, in cache), so that their rows are prefetched.
template <int V, int T, bool kBias, bool kMask, bool kAhead>
void dw_tile(const ConvGeometry& g, Index fp, const Index* off, const float* image, const float* dy, const float* y,
             __mmask16 last, float* dw, float* db) {
  // One flat array, every loop over it unrolled: g++ kept a [T][V] array of
  // sums on the stack, storing each one every pixel.
  __m512 acc[T * V], bias[V];
#pragma GCC unroll 32
  for (int i = 0; i < T * V; ++i) acc[i] = _mm512_setzero_ps();
#pragma GCC unroll 4
  for (int v = 0; v < V; ++v) bias[v] = _mm512_setzero_ps();
  const __m512 zero = _mm512_setzero_ps();
  // A batch's dy and y stream from L3 (they outgrow L2), and the tiles did
  // too little arithmetic per row to hide the wait: rows prefetched 16
  // pixels ahead made the seed's conv1 backward 10-12 % faster
  // (docs/benchmarks.md). On a scratch in cache they cost 2 %. Past the
  // end, a prefetch is a no-op.
  const Index ahead = 16 * g.f;
  Index tap[T];
#pragma GCC unroll 16
  for (int t = 0; t < T; ++t) tap[t] = off[t];
  for (Index oy = 0; oy < g.oh; ++oy) {
    const float* x = image + oy * g.sh * g.w * g.c;
    const float* gz = dy + oy * g.ow * g.f;
    const float* yr = kMask ? y + oy * g.ow * g.f : nullptr;
    for (Index ox = 0; ox < g.ow; ++ox, x += g.sw * g.c, gz += g.f, yr += kMask ? g.f : 0) {
      __m512 d[V];
      __mmask16 m[V];
#pragma GCC unroll 4
      for (int v = 0; v < V && kAhead; ++v) {
        _mm_prefetch(reinterpret_cast<const char*>(gz + ahead + 16 * v), _MM_HINT_T0);
        if constexpr (kMask) _mm_prefetch(reinterpret_cast<const char*>(yr + ahead + 16 * v), _MM_HINT_T0);
      }
#pragma GCC unroll 4
      for (int v = 0; v < V; ++v) {
        const __mmask16 lanes = v == V - 1 ? last : __mmask16(0xFFFF);
        m[v] = kMask ? _mm512_mask_cmp_ps_mask(lanes, _mm512_maskz_loadu_ps(lanes, yr + 16 * v), zero, _CMP_GT_OQ)
                     : lanes;
        d[v] = _mm512_maskz_loadu_ps(lanes, gz + 16 * v);  // `lanes` is the same every pixel: no wait
        if constexpr (kBias)
          bias[v] = kMask ? _mm512_mask_add_ps(bias[v], m[v], bias[v], d[v]) : _mm512_add_ps(bias[v], d[v]);
      }
#pragma GCC unroll 16
      for (int t = 0; t < T; ++t) {
        const __m512 xv = _mm512_set1_ps(x[tap[t]]);
#pragma GCC unroll 4
        for (int v = 0; v < V; ++v)
          acc[t * V + v] = kMask ? _mm512_mask3_fmadd_ps(xv, d[v], acc[t * V + v], m[v])
                                 : _mm512_fmadd_ps(xv, d[v], acc[t * V + v]);
      }
    }
  }
#pragma GCC unroll 32
  for (int i = 0; i < T * V; ++i) {
    float* out = dw + (i / V) * fp + 16 * (i % V);
    _mm512_storeu_ps(out, _mm512_add_ps(_mm512_loadu_ps(out), acc[i]));
  }
  if constexpr (kBias)
    for (int v = 0; v < V; ++v) _mm512_storeu_ps(db + 16 * v, _mm512_add_ps(_mm512_loadu_ps(db + 16 * v), bias[v]));
}

// dW (K, fp) and db (fp) += one image's share, from its dy (OH * OW, f) and
// ReLU's output y (kMask; else dy is masked already): blocks of 32 filters,
// then of 16; taps in tiles as for_wide_tap_tiles (32 filters) and
// for_tap_tiles (16: 9 for 3x3 windows, else 12) cut them. The tiles change
// which sums share a pass over dy, never the order of any sum. Every window
// lies inside the image (padded_geometry).
template <bool kMask, bool kAhead>
void dw_one_masked(const ConvGeometry& g, Index fp, const Index* off, const float* image, const float* dy,
                   const float* y, float* dw, float* db) {
  auto block = [&]<int V>(Index f0) {
    const Index in_last = std::min<Index>(16, g.f - f0 - 16 * (V - 1));
    const auto last = static_cast<__mmask16>((1u << in_last) - 1);
    const float* yb = kMask ? y + f0 : nullptr;
    const auto tile = [&]<int T>(std::integral_constant<int, T>, Index t0) {
      float* out = dw + t0 * fp + f0;
      if (t0 == 0)  // the first tile of a block also sums db
        dw_tile<V, T, true, kMask, kAhead>(g, fp, off + t0, image, dy + f0, yb, last, out, db + f0);
      else
        dw_tile<V, T, false, kMask, kAhead>(g, fp, off + t0, image, dy + f0, yb, last, out, nullptr);
    };
    if constexpr (V == 2) for_wide_tap_tiles(g.patch(), tile);
    else for_tap_tiles<12>(g.patch(), tile);
  };
  Index f0 = 0;
  for (; f0 + 32 <= fp; f0 += 32) block.template operator()<2>(f0);
  if (f0 < fp) block.template operator()<1>(f0);
}

/// dw_one_masked, masking dy by y when y is given (then a batch's map);
/// `streamed`: whether dy is a batch's map too, not a scratch in cache.
inline void dw_one(const ConvGeometry& g, Index fp, const Index* off, const float* image, const float* dy,
                   const float* y, bool streamed, float* dw, float* db) {
  if (y)
    dw_one_masked<true, true>(g, fp, off, image, dy, y, dw, db);
  else if (streamed)
    dw_one_masked<false, true>(g, fp, off, image, dy, nullptr, dw, db);
  else
    dw_one_masked<false, false>(g, fp, off, image, dy, nullptr, dw, db);
}

}  // namespace loom::conv::avx512

#endif
