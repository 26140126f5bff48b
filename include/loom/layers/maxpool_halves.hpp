#pragma once
// MaxPool2D's 2x2 windows at stride 2 that lie inside the input (the pools of
// the seed model and of every suite model), a window at a time: one sample,
// NHWC, channels innermost. Tap t of a window is (ky, kx) = (t / 2, t % 2).
//
//   pool_halves   y = the maximum of each window, and with kTrack its tap in
//                 won: the first strictly greatest in tap order, a NaN never
//                 taken after the first tap (std::max's rule), as the
//                 tap-by-tap walk of maxpool2d.hpp
//   route_halves  backward: dx under each window = dy where the tap won, else 0
//                 (and, given the maxima, where they are positive: a fused ReLU)
//   pool_window, route_window
//                 one window's 16 channels of each: what a convolution that
//                 pools in its own output stage (src/winograd_tile_io.hpp) calls
//
// The forward is written with AVX-512 intrinsics (a compare into a mask
// register, two masked moves per tap): written as plain loops, g++ left it
// scalar, 3 to 5 times slower than the tap-by-tap walk, which is what builds
// without AVX-512 use (pool_halves_supported). Measured in
// docs/benchmarks-history.md (loom_bench layer/pool).

#include <bit>
#include <cstdint>

#include "loom/tensor.hpp"

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace loom::maxpool_halves {

#if defined(__AVX512F__)
inline constexpr bool pool_halves_supported = true;

// One window's maximum over `lanes` of 16 channels: y = the maximum of the
// four taps' vectors (from[t], in tap order) and, with kTrack, won = its
// tap. Shared by pool_halves and the Winograd convolution's pooled output
// stage (src/winograd_tile_io.hpp), so that both pool by this one rule.
template <bool kTrack>
inline void pool_window(const float* const from[4], __mmask16 lanes, float* y, std::int32_t* won) {
  __m512 best = _mm512_maskz_loadu_ps(lanes, from[0]);
  __m512i tap = _mm512_setzero_si512();
#pragma GCC unroll 3
  for (int t = 1; t < 4; ++t) {
    const __m512 v = _mm512_maskz_loadu_ps(lanes, from[t]);
    const __mmask16 greater = _mm512_cmp_ps_mask(v, best, _CMP_GT_OQ);  // false for NaN either side
    best = _mm512_mask_mov_ps(best, greater, v);
    if constexpr (kTrack) tap = _mm512_mask_mov_epi32(tap, greater, _mm512_set1_epi32(t));
  }
  _mm512_mask_storeu_ps(y, lanes, best);
  if constexpr (kTrack) _mm512_mask_storeu_epi32(won, lanes, tap);
}

// One window's gradient over `lanes` of 16 channels, tap by tap: to[t] =
// dy where tap t won (and, given the maxima, where they are positive), else
// 0, all 16 lanes written: the values route_halves writes under the window.
inline void route_window(const float* dy, const std::int32_t* won, const float* positive_maxima, __mmask16 lanes,
                         float* const to[4]) {
  const __m512i taps = _mm512_maskz_loadu_epi32(lanes, won);
  if (positive_maxima)
    lanes = _mm512_mask_cmp_ps_mask(lanes, _mm512_maskz_loadu_ps(lanes, positive_maxima), _mm512_setzero_ps(),
                                    _CMP_GT_OQ);
  const __m512 g = _mm512_maskz_loadu_ps(lanes, dy);
#pragma GCC unroll 4
  for (int t = 0; t < 4; ++t)
    _mm512_storeu_ps(to[t], _mm512_maskz_mov_ps(_mm512_mask_cmpeq_epi32_mask(lanes, taps, _mm512_set1_epi32(t)), g));
}

// x (h, w, c) -> y (oh, ow, c) and, with kTrack, won (oh, ow, c).
template <bool kTrack>
void pool_halves(const float* __restrict x, float* __restrict y, std::int32_t* __restrict won, Index oh, Index ow,
                 Index w, Index c) {
  for (Index oy = 0; oy < oh; ++oy)
    for (Index ox = 0; ox < ow; ++ox) {
      const float* a = x + (2 * oy * w + 2 * ox) * c;
      const Index out = (oy * ow + ox) * c;
      for (Index ch = 0; ch < c; ch += 16) {
        const __mmask16 lanes = c - ch >= 16 ? __mmask16(0xFFFF) : static_cast<__mmask16>((1u << (c - ch)) - 1);
        const float* from[4] = {a + ch, a + c + ch, a + w * c + ch, a + w * c + c + ch};
        pool_window<kTrack>(from, lanes, y + out + ch, kTrack ? won + out + ch : nullptr);
      }
    }
}
#else
inline constexpr bool pool_halves_supported = false;

template <bool kTrack>
void pool_halves(const float*, float*, std::int32_t*, Index, Index, Index, Index) {}
#endif

// One sample's dx (h, w, c) under its 2x2 windows = dy (oh, ow, c) where the
// tap won, else 0 (bit masks, as MaxPool2D's route_where_won); with
// kPositive, also 0 where the window's maximum y (oh, ow, c) is not positive:
// ReLU's mask for a map that was rectified before it was pooled (the
// maximum is the winner's value). Not inlined, so that g++ keeps the
// __restrict and vectorises the channel loop.
template <bool kPositive>
[[gnu::noinline]] void route_halves_masked(float* __restrict dx, const float* __restrict dy,
                                          const std::int32_t* __restrict won, const float* __restrict y, Index oh,
                                          Index ow, Index w, Index c) {
  for (Index oy = 0; oy < oh; ++oy)
    for (Index ox = 0; ox < ow; ++ox) {
      float* a = dx + (2 * oy * w + 2 * ox) * c;
      float* to[4] = {a, a + c, a + w * c, a + w * c + c};
      const Index at = (oy * ow + ox) * c;
      const float* g = dy + at;
      const std::int32_t* t = won + at;
      for (std::int32_t i = 0; i < 4; ++i)
        for (Index ch = 0; ch < c; ++ch) {
          std::int32_t keep = -static_cast<std::int32_t>(t[ch] == i);
          if constexpr (kPositive) keep &= -static_cast<std::int32_t>(y[at + ch] > 0.0f);
          to[i][ch] = std::bit_cast<float>(std::bit_cast<std::int32_t>(g[ch]) & keep);
        }
    }
}

/// route_halves_masked, with ReLU's mask when the pooled maxima are given.
inline void route_halves(float* dx, const float* dy, const std::int32_t* won, Index oh, Index ow, Index w, Index c,
                         const float* positive_maxima = nullptr) {
  if (positive_maxima)
    route_halves_masked<true>(dx, dy, won, positive_maxima, oh, ow, w, c);
  else
    route_halves_masked<false>(dx, dy, won, nullptr, oh, ow, w, c);
}

}  // namespace loom::maxpool_halves
