#pragma once
// Products too small for the blocked loops: a few rows of C against a
// row-major B (multiply_thin), and an empty sum over K = 0 (multiply_empty).
//
// Part of loom::gemm's implementation, included by src/gemm.cpp alone: its
// names live in that file's anonymous namespace, one translation unit, so
// the compiler inlines across the parts as it did when they were one file.

#include <algorithm>
#include <vector>

#include "gemm_blocking.hpp"
#include "gemm_kernels.hpp"

namespace loom::gemm {
namespace {

// Fewer rows than a tile and a row-major B (one image through a Dense
// layer): packing B would copy the whole of it for a handful of rows, so B is
// streamed once instead, read where it is. The arithmetic is the packed
// path's, element for element: each K block summed in order from zero (an
// FMA per term, where the kernel's is one: when the target has FMA), then
// added onto C, so a sample's result does not depend on how many rows it was
// multiplied with.
#if defined(LOOM_GEMM_AVX512)
// M rows and V vectors of columns (from j, masked at cols) of one K block,
// summed in registers: per k, V loads of a B row and M * V FMAs. The sums
// used to go through memory, a load and a store for each FMA, which made a
// one-image Dense layer twice as slow as its weights' stream.
template <int M, int V>
void thin_block(Index kc, const float* a, Index ars, Index acs, const float* b, Index ldb, Index j, Index cols,
                float* sums, Index lds) {
  __m512 acc[M][V];
  __mmask16 mask[V];
#pragma GCC unroll 8
  for (int v = 0; v < V; ++v) {
    const Index left = cols - j - 16 * v;
    mask[v] = static_cast<__mmask16>(left >= 16 ? 0xFFFF : left <= 0 ? 0 : (1u << left) - 1);
#pragma GCC unroll 8
    for (int i = 0; i < M; ++i) acc[i][v] = _mm512_setzero_ps();
  }
  for (Index k = 0; k < kc; ++k) {
    const float* brow = b + k * ldb + j;
    __m512 bv[V];
#pragma GCC unroll 8
    for (int v = 0; v < V; ++v) bv[v] = _mm512_maskz_loadu_ps(mask[v], brow + 16 * v);
#pragma GCC unroll 8
    for (int i = 0; i < M; ++i) {
      const __m512 x = _mm512_set1_ps(a[i * ars + k * acs]);
#pragma GCC unroll 8
      for (int v = 0; v < V; ++v) acc[i][v] = _mm512_fmadd_ps(x, bv[v], acc[i][v]);
    }
  }
#pragma GCC unroll 8
  for (int i = 0; i < M; ++i)
#pragma GCC unroll 8
    for (int v = 0; v < V; ++v) _mm512_mask_storeu_ps(sums + i * lds + j + 16 * v, mask[v], acc[i][v]);
}

// sums (m x n, row-major) = A (m x kc, from column pc) B (kc rows from pc).
template <int M>
void thin_sums(Index n, Index pc, Index kc, ConstView a, ConstView b, float* sums) {
  constexpr int V = M <= 3 ? 8 : 24 / M;  // M * V of the 32 registers hold sums
  for (Index j = 0; j < n; j += 16 * V)
    thin_block<M, V>(kc, a.data + pc * a.col_stride, a.row_stride, a.col_stride, b.data + pc * b.row_stride,
                     b.row_stride, j, n, sums, n);
}
static_assert(kThinRows <= 6, "thin_sums has cases for up to 5 rows");
#endif

void thin_sums(Index pc, Index kc, ConstView a, ConstView b, float* sums) {
  const Index m = a.rows, n = b.cols;
#if defined(LOOM_GEMM_AVX512)
  switch (m) {
    case 1: return thin_sums<1>(n, pc, kc, a, b, sums);
    case 2: return thin_sums<2>(n, pc, kc, a, b, sums);
    case 3: return thin_sums<3>(n, pc, kc, a, b, sums);
    case 4: return thin_sums<4>(n, pc, kc, a, b, sums);
    case 5: return thin_sums<5>(n, pc, kc, a, b, sums);
    default: break;
  }
#endif
  std::fill_n(sums, m * n, 0.0f);
  for (Index k = pc; k < pc + kc; ++k) {
    const float* brow = b.data + k * b.row_stride;
    for (Index i = 0; i < m; ++i) {
      const float aik = a.data[i * a.row_stride + k * a.col_stride];
      float* s = sums + i * n;
      for (Index j = 0; j < n; ++j) s[j] += aik * brow[j];
    }
  }
}

void multiply_thin(View c, ConstView a, ConstView b, const Epilogue& e) {
  const Index m = c.rows, n = c.cols, kk = a.cols;
  thread_local std::vector<float> sums;
  sums.resize(static_cast<std::size_t>(m * n));
  for (Index pc = 0; pc < kk; pc += kKc) {
    const Index kc = std::min(kKc, kk - pc);
    thin_sums(pc, kc, a, b, sums.data());
    const bool last = pc + kc == kk;
    const Epilogue o = e.for_block(pc == 0, last);
    for (Index i = 0; i < m; ++i)
      for (Index j = 0; j < n; ++j)
        finish(sums[static_cast<std::size_t>(i * n + j)], c.data[i * c.row_stride + j * c.col_stride], j, o);
  }
}

// An empty sum (K = 0): C = 0 (or C), then the epilogue.
void multiply_empty(View c, const Epilogue& e) {
  alignas(64) const float zeros[kMr * kNr] = {};
  for (Index i = 0; i < c.rows; i += kMr)
    for (Index j = 0; j < c.cols; j += kNr)
      store_tile(zeros, StridedC{c.data + i * c.row_stride + j * c.col_stride, c.row_stride, c.col_stride},
                 std::min(kMr, c.rows - i), std::min(kNr, c.cols - j), e.from_column(j));
}

}  // namespace
}  // namespace loom::gemm
