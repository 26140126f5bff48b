#pragma once
// How the direct convolution's weight gradient cuts a window's K taps into
// register tiles, shared by the portable tiles (src/direct_conv.cpp) and the
// AVX-512 ones (src/direct_dw_avx512.hpp).

#include <algorithm>
#include <type_traits>
#include <utility>

#include "loom/tensor.hpp"

namespace loom::conv {

// Calls tile(std::integral_constant<int, T>{}, t0) for consecutive tiles of T
// taps covering [0, k): tiles of 9 when k is a multiple of 9 (3x3 windows)
// and kMain allows, then of kMain (the most taps whose sums fit in
// registers), then 6, 3, 2 and 1 for the rest.
template <int kMain, typename Tile>
void for_tap_tiles(Index k, Tile&& tile) {
  Index t0 = 0;
  auto run = [&]<int T>(std::integral_constant<int, T> size) {
    for (; t0 + T <= k; t0 += T) tile(size, t0);
  };
  if (k % 9 == 0 && kMain >= 9) run(std::integral_constant<int, 9>{});
  run(std::integral_constant<int, kMain>{});
  if constexpr (kMain > 6) run(std::integral_constant<int, 6>{});
  run(std::integral_constant<int, 3>{});
  run(std::integral_constant<int, 2>{});
  run(std::integral_constant<int, 1>{});
}

// Calls fn(std::integral_constant<int, T>{}) for T = n, 1 <= n <= kMax.
template <int kMax, typename Fn>
void with_tap_count(Index n, Fn&& fn) {
  [&]<int... Ts>(std::integer_sequence<int, Ts...>) {
    ((n == Ts + 1 ? (fn(std::integral_constant<int, Ts + 1>{}), true) : false) || ...);
  }(std::make_integer_sequence<int, kMax>{});
}

// The AVX-512 weight gradient's tiles of two vectors (32 filters): as many
// taps as 31 of the 32 registers hold, 13 in the first tile (which also sums
// db) and 14 after it, the last tile the rest. A colour 3x3 window (27 taps)
// is two passes over dy instead of three tiles of 9, a grey 5x5 (25) two
// instead of four (docs/benchmarks.md).
template <typename Tile>
void for_wide_tap_tiles(Index k, Tile&& tile) {
  for (Index t0 = 0; t0 < k;) {
    const Index n = std::min<Index>(t0 == 0 ? 13 : 14, k - t0);
    with_tap_count<14>(n, [&]<int T>(std::integral_constant<int, T> size) { tile(size, t0); });
    t0 += n;
  }
}

}  // namespace loom::conv
