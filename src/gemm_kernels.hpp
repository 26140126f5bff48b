#pragma once
// The kernels: one kMr x kNr tile of C from panels of A and B (or A read in
// place, or through a row table), and the epilogue each element of C gets on
// its way out (gemm.hpp's Epilogue). One kernel per instruction set; the
// same FMAs in the same order in each.
//
// Part of loom::gemm's implementation, included by src/gemm.cpp alone: its
// names live in that file's anonymous namespace, one translation unit, so
// the compiler inlines across the parts as it did when they were one file.

#include <algorithm>
#include <type_traits>

#include "gemm_blocking.hpp"

namespace loom::gemm {
namespace {

// One element of C on its way out: its sum (+ C) (+ bias[j]) (then ReLU).
inline void finish(float sum, float& dst, Index j, const Epilogue& o) {
  if (o.accumulate) sum = dst + sum;
  if (o.bias) sum += o.bias[j];
  if (o.normalize) sum = o.normalize(sum, j);
  if (o.relu) sum = std::max(sum, 0.0f);
  dst = sum;
}

// Where a tile of C goes: row i at row(i), its columns cs apart. A matrix
// view's tile (StridedC), or rows each at a pointer of their own (TableC: a
// convolution's phase of dx, pixels strides apart in the image).
struct StridedC {
  float* c;
  Index rs, cs;
  float* row(Index i) const { return c + i * rs; }
};
struct TableC {
  float* const* rows;  // the tile's first row's pointer; the next rows' follow
  Index col;           // the tile's first column
  static constexpr Index cs = 1;
  float* row(Index i) const { return rows[i] + col; }
};

// tile (kMr x kNr, row-major) -> C (rows x cols of it), with the epilogue.
template <typename CRows>
void store_tile(const float* tile, CRows c, Index rows, Index cols, const Epilogue& o) {
  for (Index i = 0; i < rows; ++i) {
    float* row = c.row(i);
    for (Index j = 0; j < cols; ++j) finish(tile[i * kNr + j], row[j * c.cs], j, o);
  }
}

#if defined(LOOM_GEMM_AVX512)
// The 12 x 32 kernel: 24 accumulators, per k one B row (two vectors) and
// twelve broadcasts of A. Each element of C gets the same FMAs in the same
// order as in the AVX2 and portable kernels, so results do not depend on the
// tile. A row-major C (any tile, the edges masked) is read and written in
// place; any other C goes through a small buffer. A is read as AForm says;
// B rows are ldb apart (kNr in a packed panel, B's row stride in place).
// kVecs = 1: a panel's last 16 columns or fewer (filters 40, 72, 100 or
// 10 leave the last panel a quarter full or less) get a 12 x 16 tile, half
// the FMAs of one that would mostly multiply the panel's zero padding.
// The register tile: kRows rows (kMr but for the weight gradient's 8-row
// tiles, multiply_transposed) of kVecs vectors.
template <int kVecs, Index kRows = kMr>
struct Tile {
  __m512 v[kRows][kVecs];
};

// depth steps of FMAs into acc: per k one B row (kVecs vectors; b advanced
// ldb to the next: kNr in a packed panel, B's row stride in place) and kRows
// broadcasts a_at(i, k).
template <int kVecs, Index kRows, typename AAt>
[[gnu::always_inline]] inline void fma_steps(Tile<kVecs, kRows>& acc, Index depth, const float*& b, Index ldb,
                                             AAt&& a_at) {
  for (Index k = 0; k < depth; ++k, b += ldb) {
    __m512 bv[kVecs];
#pragma GCC unroll 2
    for (int v = 0; v < kVecs; ++v) bv[v] = _mm512_loadu_ps(b + 16 * v);
#pragma GCC unroll 12
    for (Index i = 0; i < kRows; ++i) {
      const __m512 x = _mm512_set1_ps(a_at(i, k));
#pragma GCC unroll 2
      for (int v = 0; v < kVecs; ++v) acc.v[i][v] = _mm512_fmadd_ps(x, bv[v], acc.v[i][v]);
    }
  }
}

// The tile's `rows` (at most kRows) x `cols` onto C, with the epilogue.
template <int kVecs, Index kRows, typename CRows>
[[gnu::always_inline]] inline void store(const Tile<kVecs, kRows>& acc, CRows c, Index rows, Index cols,
                                         const Epilogue& o) {
  const auto mask = [](Index n) { return static_cast<__mmask16>(n >= 16 ? 0xFFFF : n <= 0 ? 0 : (1u << n) - 1); };
  __mmask16 m[kVecs];
#pragma GCC unroll 2
  for (int v = 0; v < kVecs; ++v) m[v] = mask(cols - 16 * v);
  // A plain product, or one added onto C (the phased input gradient's
  // products, Winograd's), into row-major C: stored straight from the
  // registers, the rows unrolled so that every acc.v[i] stays one. A loop to
  // `rows` indexed the tile at run time, and g++ then kept it in memory,
  // zeroed there before the multiply-adds and stored there after them: a
  // third of the time of the phased input gradient's short products (K of 32
  // to 128).
  if (c.cs == 1 && !o.bias && !o.normalize && !o.relu) {
    const auto rows_out = [&](auto add) {
#pragma GCC unroll 12
      for (Index i = 0; i < kRows; ++i) {
        if (i >= rows) break;
        float* row = c.row(i);
#pragma GCC unroll 2
        for (int v = 0; v < kVecs; ++v) {
          __m512 x = acc.v[i][v];
          if constexpr (decltype(add)::value) x = _mm512_add_ps(_mm512_maskz_loadu_ps(m[v], row + 16 * v), x);
          _mm512_mask_storeu_ps(row + 16 * v, m[v], x);
        }
      }
    };
    if (o.accumulate) return rows_out(std::true_type{});
    return rows_out(std::false_type{});
  }
  // Any other epilogue, or C not row-major: the tile through a buffer, then
  // row by row (a loop whose tests of the epilogue's parts g++ takes out of it).
  alignas(64) float tile[kRows * kNr];
#pragma GCC unroll 12
  for (Index i = 0; i < kRows; ++i)
#pragma GCC unroll 2
    for (int v = 0; v < kVecs; ++v) _mm512_store_ps(tile + i * kNr + 16 * v, acc.v[i][v]);
  if (c.cs != 1) return store_tile(tile, c, rows, std::min<Index>(cols, 16 * kVecs), o);
  const __m512 zero = _mm512_setzero_ps();
  __m512 bias[kVecs], center[kVecs], inv_std[kVecs], gamma[kVecs], beta[kVecs];
#pragma GCC unroll 2
  for (int v = 0; v < kVecs; ++v) {
    bias[v] = o.bias ? _mm512_maskz_loadu_ps(m[v], o.bias + 16 * v) : zero;
    if (o.normalize) {
      const ChannelNormalization n = o.normalize.from(16 * v);
      center[v] = _mm512_maskz_loadu_ps(m[v], n.center), inv_std[v] = _mm512_maskz_loadu_ps(m[v], n.inv_std);
      gamma[v] = _mm512_maskz_loadu_ps(m[v], n.gamma), beta[v] = _mm512_maskz_loadu_ps(m[v], n.beta);
    }
  }
  for (Index i = 0; i < rows; ++i) {
    float* row = c.row(i);
#pragma GCC unroll 2
    for (int v = 0; v < kVecs; ++v) {
      __m512 x = _mm512_load_ps(tile + i * kNr + 16 * v);
      if (o.accumulate) x = _mm512_add_ps(_mm512_maskz_loadu_ps(m[v], row + 16 * v), x);
      if (o.bias) x = _mm512_add_ps(x, bias[v]);
      if (o.normalize)  // ChannelNormalization's arithmetic: (x - center) * inv_std, then an FMA
        x = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_sub_ps(x, center[v]), inv_std[v]), gamma[v], beta[v]);
      if (o.relu) x = _mm512_max_ps(x, zero);
      _mm512_mask_storeu_ps(row + 16 * v, m[v], x);
    }
  }
}

template <int kVecs, Index kRows = kMr>
[[gnu::always_inline]] inline Tile<kVecs, kRows> zero_tile() {
  Tile<kVecs, kRows> acc;
#pragma GCC unroll 12
  for (Index i = 0; i < kRows; ++i)
#pragma GCC unroll 2
    for (int v = 0; v < kVecs; ++v) acc.v[i][v] = _mm512_setzero_ps();
  return acc;
}

template <AForm kA, int kVecs = 2>
void kernel(Index depth, const float* a, Index lda, const float* b, Index ldb, float* c, Index rs, Index cs,
            Index rows, Index cols, const Epilogue& o) {
  static_assert(kVecs == 1 || kVecs == 2);
  const Index ars = a_row_step<kA>(lda), acs = a_k_step<kA>(lda);
  Tile<kVecs> acc = zero_tile<kVecs>();
  fma_steps<kVecs>(acc, depth, b, ldb, [&](Index i, Index k) { return a[i * ars + k * acs]; });
  store<kVecs>(acc, StridedC{c, rs, cs}, rows, cols, o);
}

// The same tile for A read through a row table (GatheredRows): K from k0,
// depth values, segment by segment; within a segment row i is read at its
// own pointer; B rows ldb apart. The same FMAs in the same order as on a materialised A.
template <int kVecs, typename CRows>
void gathered_kernel(Index k0, Index depth, const float* const* table, Index segments, Index segment,
                     const float* b, Index ldb, CRows c, Index rows, Index cols, const Epilogue& o) {
  Tile<kVecs> acc = zero_tile<kVecs>();
  for (Index k = k0, end = k0 + depth; k < end;) {
    const Index s = k / segment, off = k - s * segment, len = std::min(segment - off, end - k);
    const float* p[kMr];
#pragma GCC unroll 12
    for (Index i = 0; i < kMr; ++i) p[i] = table[i * segments + s] + off;
    // The rows' segment two on, fetched while this one's multiply-adds run.
    // A convolution's rows (output pixels) read each tap from another pixel,
    // and at stride 2 every tap's 12 rows start new lines, which the
    // hardware's prefetchers do not see coming: a first strided layer of 32
    // channels ran at half the FMA rate, 25 % faster with these
    // (docs/benchmarks.md). Segments under a line share their lines. Written
    // out here: the same loop in an inline helper compiled to nothing (g++
    // 12 -O3 dropped the helper's call, and every prefetch with it).
    if (segment >= 16 && s + 2 < segments)
      for (Index i = 0; i < kMr; ++i) {
        const char* ahead = reinterpret_cast<const char*>(table[i * segments + s + 2]);
        for (Index byte = 0; byte < segment * Index(sizeof(float)); byte += 64) _mm_prefetch(ahead + byte, _MM_HINT_T0);
      }
    fma_steps<kVecs>(acc, len, b, ldb, [&](Index i, Index kk) { return p[i][kk]; });
    k += len;
  }
  store<kVecs>(acc, c, rows, cols, o);
}
// The tile for `cols` columns of a panel.
template <AForm kA>
void panel_kernel(Index depth, const float* a, Index lda, const float* b, Index ldb, float* c, Index rs, Index cs,
                  Index rows, Index cols, const Epilogue& o) {
  if (cols <= 16) return kernel<kA, 1>(depth, a, lda, b, ldb, c, rs, cs, rows, cols, o);
  kernel<kA, 2>(depth, a, lda, b, ldb, c, rs, cs, rows, cols, o);
}
template <typename CRows>
void gathered_panel_kernel(Index k0, Index depth, const float* const* table, Index segments, Index segment,
                           const float* b, Index ldb, CRows c, Index rows, Index cols, const Epilogue& o) {
  if (cols <= 16) return gathered_kernel<1>(k0, depth, table, segments, segment, b, ldb, c, rows, cols, o);
  gathered_kernel<2>(k0, depth, table, segments, segment, b, ldb, c, rows, cols, o);
}
// The tile for A = G^T, G read through its row table (a convolution's
// patches): row i of the tile is column `offset + i` of G's run s, so per k
// the tile's kRows values are side by side in G's row k, at rows[k * step] +
// offset (rows: the table from the block's first row at run s). B packed.
template <Index kRows, typename CRows>
void transposed_gathered_panel_kernel(Index depth, const float* const* rows, Index step, Index offset, const float* b,
                                      CRows c, Index cols, const Epilogue& o) {
  constexpr Index kAhead = 24;  // steps of k: about 600 cycles of FMAs, more than a miss to memory takes
  const auto run = [&](auto vecs) {
    constexpr int kVecs = decltype(vecs)::value;
    Tile<kVecs, kRows> acc = zero_tile<kVecs, kRows>();
    fma_steps<kVecs>(acc, depth, b, kNr, [&](Index i, Index k) {
      // Each k reads another pixel's run, at stride 2 one the hardware's
      // prefetchers do not see coming: fetched kAhead steps early, both lines
      // the tile's kRows values may straddle. The strided ResNet layers' weight
      // gradients ran 8-20 % faster on one thread of a Zen 4 (docs/benchmarks.md).
      if (i == 0 && k + kAhead < depth) {
        const char* ahead = reinterpret_cast<const char*>(rows[(k + kAhead) * step] + offset);
        _mm_prefetch(ahead, _MM_HINT_T0);
        _mm_prefetch(ahead + (kRows - 1) * sizeof(float), _MM_HINT_T0);
      }
      const float* p = rows[k * step] + offset;
      asm("" : "+r"(p));  // one register per k, the broadcasts at fixed displacements from it
      return p[i];
    });
    store<kVecs>(acc, c, kRows, cols, o);
  };
  if (cols <= 16) return run(std::integral_constant<int, 1>{});
  run(std::integral_constant<int, 2>{});
}
#elif defined(LOOM_GEMM_AVX2)
// The 6 x 16 kernel: 12 accumulators, per k one B row (two vectors) and six
// broadcasts of A. Full tiles of a row-major C are read and written in place.
// A is read as AForm says; B rows are ldb apart (kNr in a packed panel).
template <AForm kA>
void kernel(Index depth, const float* a, Index lda, const float* b, Index ldb, float* c, Index rs, Index cs,
            Index rows, Index cols, const Epilogue& o) {
  const Index ars = a_row_step<kA>(lda), acs = a_k_step<kA>(lda);
  __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
  __m256 c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
  for (Index k = 0; k < depth; ++k, a += acs, b += ldb) {
    const __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
    __m256 x = _mm256_broadcast_ss(a);
    c00 = _mm256_fmadd_ps(x, b0, c00), c01 = _mm256_fmadd_ps(x, b1, c01);
    x = _mm256_broadcast_ss(a + ars);
    c10 = _mm256_fmadd_ps(x, b0, c10), c11 = _mm256_fmadd_ps(x, b1, c11);
    x = _mm256_broadcast_ss(a + 2 * ars);
    c20 = _mm256_fmadd_ps(x, b0, c20), c21 = _mm256_fmadd_ps(x, b1, c21);
    x = _mm256_broadcast_ss(a + 3 * ars);
    c30 = _mm256_fmadd_ps(x, b0, c30), c31 = _mm256_fmadd_ps(x, b1, c31);
    x = _mm256_broadcast_ss(a + 4 * ars);
    c40 = _mm256_fmadd_ps(x, b0, c40), c41 = _mm256_fmadd_ps(x, b1, c41);
    x = _mm256_broadcast_ss(a + 5 * ars);
    c50 = _mm256_fmadd_ps(x, b0, c50), c51 = _mm256_fmadd_ps(x, b1, c51);
  }
  const __m256 acc[kMr][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31}, {c40, c41}, {c50, c51}};
  if (rows == kMr && cols == kNr && cs == 1 && !o.normalize) {  // else the scalar epilogue below
    const __m256 zero = _mm256_setzero_ps();
    __m256 bias0 = zero, bias1 = zero;
    if (o.bias) bias0 = _mm256_loadu_ps(o.bias), bias1 = _mm256_loadu_ps(o.bias + 8);
    for (Index i = 0; i < kMr; ++i) {
      float* row = c + i * rs;
      __m256 v0 = acc[i][0], v1 = acc[i][1];
      if (o.accumulate) v0 = _mm256_add_ps(_mm256_loadu_ps(row), v0), v1 = _mm256_add_ps(_mm256_loadu_ps(row + 8), v1);
      if (o.bias) v0 = _mm256_add_ps(v0, bias0), v1 = _mm256_add_ps(v1, bias1);
      if (o.relu) v0 = _mm256_max_ps(v0, zero), v1 = _mm256_max_ps(v1, zero);
      _mm256_storeu_ps(row, v0);
      _mm256_storeu_ps(row + 8, v1);
    }
    return;
  }
  alignas(32) float tile[kMr * kNr];
  for (Index i = 0; i < kMr; ++i) _mm256_store_ps(tile + i * kNr, acc[i][0]), _mm256_store_ps(tile + i * kNr + 8, acc[i][1]);
  store_tile(tile, StridedC{c, rs, cs}, rows, cols, o);
}
#else
// Portable kernel: the same tile and order of sums, left to the compiler's vectoriser.
template <AForm kA>
void kernel(Index depth, const float* a, Index lda, const float* b, Index ldb, float* c, Index rs, Index cs,
            Index rows, Index cols, const Epilogue& o) {
  const Index ars = a_row_step<kA>(lda), acs = a_k_step<kA>(lda);
  alignas(64) float tile[kMr * kNr] = {};
  for (Index k = 0; k < depth; ++k, a += acs, b += ldb)
    for (Index i = 0; i < kMr; ++i)
      for (Index j = 0; j < kNr; ++j) tile[i * kNr + j] += a[i * ars] * b[j];
  store_tile(tile, StridedC{c, rs, cs}, rows, cols, o);
}
#endif
#if !defined(LOOM_GEMM_AVX512)
template <AForm kA>
void panel_kernel(Index depth, const float* a, Index lda, const float* b, Index ldb, float* c, Index rs, Index cs,
                  Index rows, Index cols, const Epilogue& o) {
  kernel<kA>(depth, a, lda, b, ldb, c, rs, cs, rows, cols, o);
}
#endif

}  // namespace
}  // namespace loom::gemm
