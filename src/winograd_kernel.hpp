#pragma once
// The kernel of Winograd F(m x m, 3 x 3), both ways: U = G g GT, one (C, F)
// matrix per tile position, packed for the products as it is made; the
// packing of U^T for dx; and dW = GT dU G.
//
// Part of the Winograd convolution's implementation, included by
// src/winograd_conv.cpp alone: its names live in that file's anonymous
// namespace, one translation unit, so the compiler inlines across the parts
// as it did when they were one file.

#include <algorithm>
#include <cstddef>
#include <vector>

#include "loom/conv/conv_geometry.hpp"
#include "loom/conv/winograd_conv.hpp"
#include "loom/conv/winograd_transforms.hpp"
#include "loom/gemm.hpp"
#include "loom/parallel.hpp"
#include "loom/tensor.hpp"
#include "winograd_tile_io.hpp"
#include "winograd_tiles.hpp"

namespace loom::conv {
namespace {

// Kernels of at least this many C*F pairs are transformed, packed and their
// gradients untransformed on every thread. The seed model's conv2 (32 x 64)
// had done it on one while the other waited: a tenth of its forward in a
// two-thread profile; spread, its training step (loom_bench train/step,
// binaries alternating, four rounds) went 1.64 -> 1.585 ms.
constexpr Index kSpreadKernelPairs = Index{1} << 10;

// U (and dU) hold one (C, F) matrix per tile position, each padded by a
// cache line: a (c, f) pair's 36 values are C * F floats apart, and with C
// * F a multiple of 1,024 (the seed's 32 x 64: 8 KB) all 36 fell in one
// set of the L1 cache, which evicted them as they were written.
inline Index kernel_slab(const ConvGeometry& g) { return g.c * g.f + kSlabPad; }
// U[xi], tile position xi's (C, F) matrix.
inline ConstMatrixMap u_matrix(const ConvGeometry& g, const std::vector<float>& u, int xi) {
  return {u.data() + xi * kernel_slab(g), g.c, g.f};
}
// u[xi] (C, F), kernel_slab(g) apart, = G g GT for every (c, f), F lanes
// at a time, in blocks of rows c; each block's rows of every packed[xi]
// (reshaped for (C, F)) packed by the thread that made them, while they are
// in its cache. Packed apart, by tile position, every thread read the rows
// the other had made: on a host whose vCPUs are far apart, the packing of
// the ResNet's 128 x 128 kernel took 3.7 times its one-thread time.
template <int M>
inline void transform_kernel(const ConvGeometry& g, const float* kernel, std::vector<float>& u,
                             std::vector<gemm::PackedB>& packed) {
  using Mat = winograd::Matrices<M>;
  constexpr int XI = Tiles<M>::XI;
  constexpr Index kRows = 8;
  const Index blocks = (g.c + kRows - 1) / kRows;
  parallel_for(blocks, g.c * g.f >= kSpreadKernelPairs, [&](Index b) {
    const Index c0 = b * kRows, c1 = std::min(g.c, c0 + kRows);
    alignas(64) float tile[9 * L], out[XI * L];
    for (Index c = c0; c < c1; ++c)
      for (Index f0 = 0; f0 < g.f; f0 += L) {
        const Index lanes = std::min<Index>(L, g.f - f0);
        load_slabs<9>(kernel, g.c * g.f, c * g.f + f0, lanes, tile);  // the 3x3 taps of (c, f0..)
        winograd::sandwich<typename Mat::G>(tile, out);
        store_slabs<XI>(out, u.data(), kernel_slab(g), c * g.f + f0, lanes);
      }
    for (int xi = 0; xi < XI; ++xi)
      packed[static_cast<std::size_t>(xi)].pack_rows(gemm::view(u_matrix(g, u, xi)), c0, c1);
  });
}
// U and its products' packed panels.
template <int M>
inline void transform(const ConvGeometry& g, const float* kernel, WinogradKernel& k) {
  constexpr int XI = Tiles<M>::XI;
  k.u.resize(static_cast<std::size_t>(XI * kernel_slab(g)));
  k.packed.resize(XI);
  for (auto& p : k.packed) p.reshape(g.c, g.f);
  transform_kernel<M>(g, kernel, k.u, k.packed);
}
// packed[xi] = the packing of matrix(xi), for each tile position; in
// parallel when there is enough of it (size: floats per matrix).
template <int M, typename MatrixOf>
inline void pack_each(std::vector<gemm::PackedB>& packed, Index size, MatrixOf&& matrix) {
  constexpr int XI = Tiles<M>::XI;
  packed.resize(XI);
  parallel_for(XI, size >= kSpreadKernelPairs,
               [&](Index xi) { packed[static_cast<std::size_t>(xi)].pack(matrix(static_cast<int>(xi))); });
}
// dW (3, 3, C, F) = GT dU G for every (c, f), dU the sum of `parts`
// (C, F) matrix sets one after the other, added in order.
template <int M>
inline void untransform_kernel_gradient(const ConvGeometry& g, const float* du, Index parts, float* dkernel) {
  using Mat = winograd::Matrices<M>;
  constexpr int XI = Tiles<M>::XI;
  const Index part = XI * kernel_slab(g);
  parallel_for(g.c, g.c * g.f >= kSpreadKernelPairs, [&](Index c) {
    alignas(64) float tile[XI * L], more[XI * L], out[9 * L];
    for (Index f0 = 0; f0 < g.f; f0 += L) {
      const Index lanes = std::min<Index>(L, g.f - f0);
      load_slabs<XI>(du, kernel_slab(g), c * g.f + f0, lanes, tile);
      for (Index p = 1; p < parts; ++p) {
        load_slabs<XI>(du + p * part, kernel_slab(g), c * g.f + f0, lanes, more);
        for (int k = 0; k < XI * L; ++k) tile[k] += more[k];
      }
      winograd::sandwich<typename Mat::G, true>(tile, out);
      store_slabs<9>(out, dkernel, g.c * g.f, c * g.f + f0, lanes);
    }
  });
}

}  // namespace
}  // namespace loom::conv
