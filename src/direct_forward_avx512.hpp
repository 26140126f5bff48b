#pragma once
// The direct convolution's forward register tile with AVX-512 intrinsics
// (src/direct_conv.cpp; include/loom/conv/direct_conv.hpp explains the
// algorithm). The portable tile, a fixed array of Eigen rows, compiled to
// sums zeroed through the stack and reloaded, and register moves between
// the multiply-adds: a grey 3x3 first layer ran at 59 % of the cores' FMA
// peak on one thread. Here the sums are __m512 values in one flat array,
// every loop over it unrolled, so they live in registers from the first
// multiply-add to the store. The arithmetic is the portable tile's, in the
// same order: sums from zero, one multiply-add per tap in (ky, kx, ch)
// order, then the bias, then ReLU as Eigen's max(0) computes it; the
// results are the same bits.

#if defined(__AVX512F__)

#include <immintrin.h>

#include "loom/conv/conv_geometry.hpp"

namespace loom::conv::avx512 {

// P output pixels of a row times V vectors of 16 filters, P * V sums in
// registers: every tap of the window added, then bias and ReLU as they are
// stored, the last vector under the mask `last` (its lanes that are filters). `in` is the first pixel's window corner, `kernel` (K, kf)
// and `bias` start at the tile's first filter, `out` (rows of g.f) too.
// Every window lies inside the image. KH and KWC: the window's rows and
// taps per row when known at compile time (0: read from g).
template <int KH, int KWC, int V, int P>
void pixel_tile(const ConvGeometry& g, const float* in, const float* kernel, Index kf, const float* bias,
                __mmask16 last, bool relu, float* out) {
  const Index step = g.sw * g.c, taps = KWC ? KWC : g.kw * g.c, kh = KH ? KH : g.kh, row = g.w * g.c;
  __m512 acc[P * V];
#pragma GCC unroll 32
  for (int i = 0; i < P * V; ++i) acc[i] = _mm512_setzero_ps();
  for (Index ky = 0; ky < kh; ++ky) {
    const float* x = in + ky * row;
    const float* wt = kernel + ky * taps * kf;
    for (Index j = 0; j < taps; ++j) {  // (kx, ch) taps: contiguous in input and kernel
      __m512 w[V];
#pragma GCC unroll 4
      for (int v = 0; v < V; ++v) w[v] = _mm512_loadu_ps(wt + j * kf + 16 * v);
#pragma GCC unroll 16
      for (int p = 0; p < P; ++p) {
        const __m512 xv = _mm512_set1_ps(x[j + p * step]);
#pragma GCC unroll 4
        for (int v = 0; v < V; ++v) acc[p * V + v] = _mm512_fmadd_ps(xv, w[v], acc[p * V + v]);
      }
    }
  }
  const __m512 zero = _mm512_setzero_ps();
#pragma GCC unroll 32
  for (int i = 0; i < P * V; ++i) {
    const int p = i / V, v = i % V;
    __m512 r = _mm512_add_ps(acc[i], _mm512_loadu_ps(bias + 16 * v));
    if (relu) r = _mm512_max_ps(zero, r);  // Eigen's max(0): r itself when both are zero
    if (v == V - 1)
      _mm512_mask_storeu_ps(out + p * g.f + 16 * v, last, r);
    else
      _mm512_storeu_ps(out + p * g.f + 16 * v, r);
  }
}

}  // namespace loom::conv::avx512

#endif
