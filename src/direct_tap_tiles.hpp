#pragma once
// How the direct convolution's weight gradient cuts a window's K taps into
// register tiles, shared by the portable tiles (src/direct_conv.cpp) and the
// AVX-512 ones (src/direct_dw_avx512.hpp).

#include <type_traits>

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

}  // namespace loom::conv
