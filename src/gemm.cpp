// loom::gemm (loom/gemm.hpp): packed, blocked single-precision products.
//
// Loops, outermost first (Goto's algorithm, as BLIS names them):
//   jc  columns of C in blocks of kNc      B block (kKc x kNc) packed: in L3
//   pc  the sum over K in blocks of kKc     (fixed: the order every element is summed in)
//   ic  rows of C in blocks of kMc         A block (kMc x kKc) packed: in L2
//   jr  kNr columns at a time              one B panel (kKc x kNr): in L1
//   ir  kMr rows at a time                 the kernel: a kMr x kNr tile of C in registers
//                                          (6 x 16 in 12 AVX2 registers, 12 x 32 in 24 AVX-512 ones)
// Packed panels are zero-padded to whole tiles, so the kernel never branches
// on edges; a tile cut by C's edge goes through a small buffer on its way out.

#include "loom/gemm.hpp"

#include "gemm_common.hpp"

#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define LOOM_GEMM_AVX2 1
#endif

namespace loom::gemm {
namespace {

#if defined(__AVX512F__)
// AVX-512: 24 accumulators of 16 floats (of 32 registers). Wider machines run
// two 512-bit FMAs a cycle, so the 6 x 16 AVX2 tile would leave half unused.
#define LOOM_GEMM_AVX512 1
constexpr Index kMr = 12;    // rows of the register tile
constexpr Index kNr = 32;    // columns of the register tile: two 16-float vectors
#else
constexpr Index kMr = 6;     // rows of the register tile
constexpr Index kNr = 16;    // columns of the register tile: two 8-float vectors
#endif
constexpr Index kThinRows = 6;  // fewer rows than this, with a row-major B: B streamed once (multiply_thin)
constexpr Index kInPlaceRows = 128;  // products of at most this many rows read a row-major B in place
constexpr Index kKc = 256;   // K per block: a B panel of 16 KB (32 KB with AVX-512) stays in L1
constexpr Index kMc = 120;   // rows per A block: 120 KB, in L2
constexpr Index kNc = 1024;  // columns per B block: 1 MB

Index round_up(Index n, Index m) { return (n + m - 1) / m * m; }

// How a kernel reads its kMr rows of A, element (i, k) at a[i * row step +
// k * k step]: from a packed panel (the kMr values of each k side by side),
// or in place from a row-major view (rows lda apart) or a column-major one
// (a transposed operand, as V^T in Winograd's weight gradient: each k's kMr
// values side by side as in a panel, the next k lda further on).
enum class AForm { Packed, Rows, Columns };
template <AForm kA>
constexpr Index a_row_step(Index lda) {
  return kA == AForm::Rows ? lda : 1;
}
template <AForm kA>
constexpr Index a_k_step(Index lda) {
  return kA == AForm::Packed ? kMr : kA == AForm::Rows ? 1 : lda;
}

using Scratch = detail::Scratch<float>;

// A (rows x depth, rows <= kMc) into panels of kMr rows: panel p holds, for
// each k, A(p*kMr + 0..kMr-1, k) side by side; rows past the edge are zeros.
void pack_a(const ConstView& a, Index i0, Index rows, Index k0, Index depth, float* out) {
  for (Index p = 0; p < rows; p += kMr, out += kMr * depth) {
    const Index r = std::min(kMr, rows - p);
    const float* src = a.data + (i0 + p) * a.row_stride + k0 * a.col_stride;
    if (a.row_stride == 1 && r == kMr) {  // A transposed in memory: kMr contiguous values per k
      for (Index k = 0; k < depth; ++k) std::memcpy(out + k * kMr, src + k * a.col_stride, kMr * sizeof(float));
      continue;
    }
    if (a.row_stride == 1) {  // and a last panel of r < kMr rows: r values per k, then zeros
      // k by k, as above: row by row, each of the kMr passes over k had read
      // a line of A per k (14 % of the ResNet's 1x1 projection's backward,
      // whose weight gradient has 32 = 2 * 12 + 8 rows).
#if defined(LOOM_GEMM_AVX512)
      static_assert(kMr <= 16);
      const auto in = static_cast<__mmask16>((1u << r) - 1), panel = static_cast<__mmask16>((1u << kMr) - 1);
      for (Index k = 0; k < depth; ++k)
        _mm512_mask_storeu_ps(out + k * kMr, panel, _mm512_maskz_loadu_ps(in, src + k * a.col_stride));
#else
      for (Index k = 0; k < depth; ++k)
        for (Index i = 0; i < kMr; ++i) out[k * kMr + i] = i < r ? src[k * a.col_stride + i] : 0.0f;
#endif
      continue;
    }
    for (Index i = 0; i < kMr; ++i) {
      if (i >= r) {
        for (Index k = 0; k < depth; ++k) out[k * kMr + i] = 0.0f;
        continue;
      }
      const float* row = src + i * a.row_stride;
      for (Index k = 0; k < depth; ++k) out[k * kMr + i] = row[k * a.col_stride];
    }
  }
}

#if defined(LOOM_GEMM_AVX512) || defined(LOOM_GEMM_AVX2)
// Squares of kLanes x kLanes floats transposed in registers (r[i] holds row i
// on the way in, column i on the way out), for packing a column-major B: its
// columns are contiguous in K, a panel wants each k's kNr values side by
// side. Element by element, a column-major B's packing took longer than the
// product it fed (a Dense layer's dZ W^T).
#if defined(LOOM_GEMM_AVX512)
constexpr Index kLanes = 16;
using Lanes = __m512;
inline Lanes load_lanes(const float* p) { return _mm512_loadu_ps(p); }
inline void store_lanes(float* p, Lanes v) { _mm512_storeu_ps(p, v); }
inline Lanes unpack_lo(Lanes a, Lanes b) { return _mm512_unpacklo_ps(a, b); }
inline Lanes unpack_hi(Lanes a, Lanes b) { return _mm512_unpackhi_ps(a, b); }
template <int kImm>
Lanes shuffle(Lanes a, Lanes b) { return _mm512_shuffle_ps(a, b, kImm); }
#else
constexpr Index kLanes = 8;
using Lanes = __m256;
inline Lanes load_lanes(const float* p) { return _mm256_loadu_ps(p); }
inline void store_lanes(float* p, Lanes v) { _mm256_storeu_ps(p, v); }
inline Lanes unpack_lo(Lanes a, Lanes b) { return _mm256_unpacklo_ps(a, b); }
inline Lanes unpack_hi(Lanes a, Lanes b) { return _mm256_unpackhi_ps(a, b); }
template <int kImm>
Lanes shuffle(Lanes a, Lanes b) { return _mm256_shuffle_ps(a, b, kImm); }
#endif

// The first half of a transpose, within each 128-bit lane of 4 floats:
// afterwards r[4i + c], in lane L, holds column 4L + c of rows 4i .. 4i + 3.
inline void transpose_within_lanes(Lanes r[kLanes]) {
  Lanes t[kLanes];
  for (Index i = 0; i < kLanes / 2; ++i) {  // pairs of rows interleaved
    t[2 * i] = unpack_lo(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = unpack_hi(r[2 * i], r[2 * i + 1]);
  }
  for (Index i = 0; i < kLanes / 4; ++i) {  // then pairs of pairs
    r[4 * i] = shuffle<_MM_SHUFFLE(1, 0, 1, 0)>(t[4 * i], t[4 * i + 2]);
    r[4 * i + 1] = shuffle<_MM_SHUFFLE(3, 2, 3, 2)>(t[4 * i], t[4 * i + 2]);
    r[4 * i + 2] = shuffle<_MM_SHUFFLE(1, 0, 1, 0)>(t[4 * i + 1], t[4 * i + 3]);
    r[4 * i + 3] = shuffle<_MM_SHUFFLE(3, 2, 3, 2)>(t[4 * i + 1], t[4 * i + 3]);
  }
}

// The second half: the 128-bit lanes gathered, lane L of r[4i + c] to lane
// i of row 4L + c.
#if defined(LOOM_GEMM_AVX512)
inline void transpose_lanes(Lanes r[16]) {
  transpose_within_lanes(r);
  Lanes t[16];
  for (int c = 0; c < 4; ++c) {  // in two rounds of 128-bit shuffles
    t[c] = _mm512_shuffle_f32x4(r[c], r[4 + c], 0x88);
    t[4 + c] = _mm512_shuffle_f32x4(r[c], r[4 + c], 0xDD);
    t[8 + c] = _mm512_shuffle_f32x4(r[8 + c], r[12 + c], 0x88);
    t[12 + c] = _mm512_shuffle_f32x4(r[8 + c], r[12 + c], 0xDD);
  }
  for (int c = 0; c < 4; ++c) {
    r[c] = _mm512_shuffle_f32x4(t[c], t[8 + c], 0x88);
    r[4 + c] = _mm512_shuffle_f32x4(t[4 + c], t[12 + c], 0x88);
    r[8 + c] = _mm512_shuffle_f32x4(t[c], t[8 + c], 0xDD);
    r[12 + c] = _mm512_shuffle_f32x4(t[4 + c], t[12 + c], 0xDD);
  }
}
#else
inline void transpose_lanes(Lanes r[8]) {
  transpose_within_lanes(r);
  Lanes s[8];
  std::copy_n(r, 8, s);
  for (int c = 0; c < 4; ++c) {
    r[c] = _mm256_permute2f128_ps(s[c], s[4 + c], 0x20);
    r[4 + c] = _mm256_permute2f128_ps(s[c], s[4 + c], 0x31);
  }
}
#endif
static_assert(kNr % kLanes == 0);

// One whole panel (kNr columns) of a column-major B, column j at
// src + j * ldb with its K contiguous: depth rows, kLanes at a time by
// squares, the last depth % kLanes element by element.
void pack_b_panel_from_columns(const float* src, Index ldb, Index depth, float* out) {
  const Index whole = depth / kLanes * kLanes;
  for (Index k = 0; k < whole; k += kLanes)
    for (Index h = 0; h < kNr; h += kLanes) {
      Lanes r[kLanes];
      for (Index j = 0; j < kLanes; ++j) r[j] = load_lanes(src + (h + j) * ldb + k);
      transpose_lanes(r);
      for (Index kk = 0; kk < kLanes; ++kk) store_lanes(out + (k + kk) * kNr + h, r[kk]);
    }
  for (Index j = 0; j < kNr; ++j)
    for (Index k = whole; k < depth; ++k) out[k * kNr + j] = src[j * ldb + k];
}
#endif

// B (depth x cols, cols <= kNc) into panels of kNr columns: panel p holds, for
// each k, B(k, p*kNr + 0..kNr-1) side by side; columns past the edge are zeros.
// Panels are kNr * panel_depth floats apart: a block's whole depth, of which
// these rows may be a part (PackedB::pack_rows); `out` is the first row's place.
void pack_b(const ConstView& b, Index k0, Index depth, Index j0, Index cols, float* out, Index panel_depth) {
  for (Index p = 0; p < cols; p += kNr, out += kNr * panel_depth) {
    const Index w = std::min(kNr, cols - p);
    const float* src = b.data + k0 * b.row_stride + (j0 + p) * b.col_stride;
    if (b.col_stride == 1) {  // rows of B contiguous
      if (w == kNr) {  // a fixed-size copy the compiler turns into vector moves
        for (Index k = 0; k < depth; ++k) std::memcpy(out + k * kNr, src + k * b.row_stride, kNr * sizeof(float));
        continue;
      }
      for (Index k = 0; k < depth; ++k) {
        for (Index j = 0; j < w; ++j) out[k * kNr + j] = src[k * b.row_stride + j];
        for (Index j = w; j < kNr; ++j) out[k * kNr + j] = 0.0f;
      }
      continue;
    }
#if defined(LOOM_GEMM_AVX512) || defined(LOOM_GEMM_AVX2)
    if (b.row_stride == 1 && w == kNr) {  // columns of B contiguous (W^T): transposed by squares
      pack_b_panel_from_columns(src, b.col_stride, depth, out);
      continue;
    }
#endif
    for (Index j = 0; j < kNr; ++j) {  // any other B, and a last panel of fewer columns: walk each column
      if (j >= w) {
        for (Index k = 0; k < depth; ++k) out[k * kNr + j] = 0.0f;
        continue;
      }
      const float* col = src + j * b.col_stride;
      for (Index k = 0; k < depth; ++k) out[k * kNr + j] = col[k * b.row_stride];
    }
  }
}

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
  if (c.cs == 1) {
    const auto mask = [](Index n) { return static_cast<__mmask16>(n >= 16 ? 0xFFFF : n <= 0 ? 0 : (1u << n) - 1); };
    const __m512 zero = _mm512_setzero_ps();
    __mmask16 m[kVecs];
    __m512 bias[kVecs], center[kVecs], inv_std[kVecs], gamma[kVecs], beta[kVecs];
#pragma GCC unroll 2
    for (int v = 0; v < kVecs; ++v) {
      m[v] = mask(cols - 16 * v);
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
        __m512 x = acc.v[i][v];
        if (o.accumulate) x = _mm512_add_ps(_mm512_maskz_loadu_ps(m[v], row + 16 * v), x);
        if (o.bias) x = _mm512_add_ps(x, bias[v]);
        if (o.normalize)  // ChannelNormalization's arithmetic: (x - center) * inv_std, then an FMA
          x = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_sub_ps(x, center[v]), inv_std[v]), gamma[v], beta[v]);
        if (o.relu) x = _mm512_max_ps(x, zero);
        _mm512_mask_storeu_ps(row + 16 * v, m[v], x);
      }
    }
    return;
  }
  alignas(64) float tile[kRows * kNr];
  for (Index i = 0; i < kRows; ++i)
#pragma GCC unroll 2
    for (int v = 0; v < kVecs; ++v) _mm512_store_ps(tile + i * kNr + 16 * v, acc.v[i][v]);
  store_tile(tile, c, rows, std::min<Index>(cols, 16 * kVecs), o);
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

using detail::check_shapes;

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

// The blocked product's A: read in place where it is row- or column-major
// (kMr rows at a time; a last panel of fewer rows is packed, zero-padded,
// except a row-major one with AVX-512, which tile() reads through a row table),
// packed block by block otherwise.
class ViewA {
 public:
  explicit ViewA(ConstView a) : a_(a) {
    thread_local Scratch scratch;
    pa_ = scratch.get(kMc * kKc);
  }
  Index rows() const { return a_.rows; }
  Index cols() const { return a_.cols; }
  // Rows [ic, ic + mc) and K [pc, pc + kc) made ready for tile().
  void prepare(Index ic, Index mc, Index pc, Index kc) {
    ic_ = ic, pc_ = pc, kc_ = kc;
    direct_ = a_.col_stride == 1 || a_.row_stride == 1 ? mc / kMr * kMr : 0;
#if defined(LOOM_GEMM_AVX512)
    if (a_.col_stride == 1) direct_ = mc;  // a last tile of fewer rows too: tile() reads it through a row table
#endif
    if (direct_ < mc) pack_a(a_, ic + direct_, mc - direct_, pc, kc, pa_);
  }
  // The tile of `rows` rows from ic + ir against one B panel (rows ldb apart).
  void tile(Index ir, Index rows, const float* bp, Index ldb, StridedC to, Index cols, const Epilogue& o) const {
    const auto [c, rs, cs] = to;
    if (ir >= direct_)
      return panel_kernel<AForm::Packed>(kc_, pa_ + (ir - direct_) * kc_, 0, bp, ldb, c, rs, cs, rows, cols, o);
    const float* at = a_.data + (ic_ + ir) * a_.row_stride + pc_ * a_.col_stride;
#if defined(LOOM_GEMM_AVX512)
    // A last tile of fewer rows, row-major: its missing rows repeat its last
    // one (read, multiplied, never stored) instead of packing the rows with
    // zeros. Packing them had been a tenth of Winograd's products at 128
    // tiles a chunk (120 rows in place, 8 packed for each of the 36).
    if (rows < kMr && a_.col_stride == 1) {
      const float* table[kMr];
      for (Index i = 0; i < kMr; ++i) table[i] = at - pc_ + std::min(i, rows - 1) * a_.row_stride;
      return gathered_panel_kernel(pc_, kc_, table, 1, a_.cols, bp, ldb, to, rows, cols, o);
    }
#endif
    if (a_.col_stride == 1)
      panel_kernel<AForm::Rows>(kc_, at, a_.row_stride, bp, ldb, c, rs, cs, rows, cols, o);
    else
      panel_kernel<AForm::Columns>(kc_, at, a_.col_stride, bp, ldb, c, rs, cs, rows, cols, o);
  }

 private:
  ConstView a_;
  float* pa_;
  Index ic_ = 0, pc_ = 0, kc_ = 0, direct_ = 0;
};

// A read through its row table (GatheredRows). With AVX-512 each tile reads
// its rows where they are; elsewhere a block is packed from the table, as
// pack_a packs a view. Rows past the last one read zeros.
class GatheredA {
 public:
  explicit GatheredA(const GatheredRows& a) : a_(a) {
    thread_local std::vector<float> zeros;
    if (static_cast<Index>(zeros.size()) < a.segment) zeros.assign(static_cast<std::size_t>(a.segment), 0.0f);
    zeros_ = zeros.data();
#if !defined(LOOM_GEMM_AVX512)
    thread_local Scratch scratch;
    pa_ = scratch.get(kMc * kKc);
#endif
  }
  Index rows() const { return a_.rows; }
  Index cols() const { return a_.cols(); }
  void prepare(Index ic, Index mc, Index pc, Index kc) {
    ic_ = ic, pc_ = pc, kc_ = kc;
#if !defined(LOOM_GEMM_AVX512)
    float* out = pa_;
    for (Index p = 0; p < mc; p += kMr, out += kMr * kc)
      for (Index i = 0; i < kMr; ++i) {
        if (p + i >= mc) {
          for (Index k = 0; k < kc; ++k) out[k * kMr + i] = 0.0f;
          continue;
        }
        const float* const* row = a_.table + (ic + p + i) * a_.segments;
        for (Index k = 0, s = pc / a_.segment, o = pc % a_.segment; k < kc; ++k) {  // run by run along the row
          out[k * kMr + i] = row[s][o];
          if (++o == a_.segment) o = 0, ++s;
        }
      }
#endif
  }
  // B comes packed (PackedB): ldb is kNr. C through a row table only with AVX-512.
  template <typename CRows>
  void tile(Index ir, Index rows, const float* bp, [[maybe_unused]] Index ldb, CRows c, Index cols,
            const Epilogue& o) const {
#if defined(LOOM_GEMM_AVX512)
    const float* const* table = a_.table + (ic_ + ir) * a_.segments;
    if (rows < kMr) {  // the last rows: a table of kMr rows, the missing ones zeros
      thread_local std::vector<const float*> padded;
      padded.assign(static_cast<std::size_t>(kMr * a_.segments), zeros_);
      std::copy_n(table, rows * a_.segments, padded.begin());
      table = padded.data();
    }
    gathered_panel_kernel(pc_, kc_, table, a_.segments, a_.segment, bp, kNr, c, rows, cols, o);
#else
    panel_kernel<AForm::Packed>(kc_, pa_ + ir * kc_, 0, bp, ldb, c.c, c.rs, c.cs, rows, cols, o);
#endif
  }

 private:
  GatheredRows a_;
  const float* zeros_;
  float* pa_ = nullptr;
  Index ic_ = 0, pc_ = 0, kc_ = 0;
};

// A block of B (kc x nc) as the kernels read it: the panel of kNr columns
// from jr starts at panel(jr), its rows ldb apart. Packed, panels follow one
// another (kc * kNr floats each, rows kNr apart); read in place, a panel is
// B's own columns.
struct BBlock {
  const float* data;
  Index panel_step, ldb;
  static BBlock packed(const float* panels, Index kc) { return {panels, kc, kNr}; }
  static BBlock in_place(const ConstView& b, Index pc, Index jc) {
    return {b.data + pc * b.row_stride + jc, 1, b.row_stride};
  }
  const float* panel(Index jr) const { return data + jr * panel_step; }
};

// C as multiply_blocked writes it: a matrix view, or rows through a table.
struct MatrixC {
  View v;
  Index rows() const { return v.rows; }
  Index cols() const { return v.cols; }
  StridedC at(Index i, Index j) const { return {v.data + i * v.row_stride + j * v.col_stride, v.row_stride, v.col_stride}; }
};
struct RowTableC {
  ScatteredRows s;
  Index rows() const { return s.rows; }
  Index cols() const { return s.cols; }
  TableC at(Index i, Index j) const { return {s.table + i, j}; }
};

// The blocked product; block_of(jc, nc, pc, kc) gives that block of B
// (packed there and then, packed beforehand: PackedB, or read in place).
template <typename A, typename BlockOf, typename C>
void multiply_blocked(C c, A a, BlockOf&& block_of, const Epilogue& e) {
  const Index m = c.rows(), n = c.cols(), kk = a.cols();
  for (Index jc = 0; jc < n; jc += kNc) {
    const Index nc = std::min(kNc, n - jc);
    for (Index pc = 0; pc < kk; pc += kKc) {
      const Index kc = std::min(kKc, kk - pc);
      const bool first = pc == 0, last = pc + kc == kk;
      const BBlock pb = block_of(jc, nc, pc, kc);
      for (Index ic = 0; ic < m; ic += kMc) {
        const Index mc = std::min(kMc, m - ic);
        a.prepare(ic, mc, pc, kc);
        for (Index jr = 0; jr < nc; jr += kNr) {
          const Index j = jc + jr, cols = std::min(kNr, nc - jr);
          const Epilogue o = e.for_block(first, last).from_column(j);
          for (Index ir = 0; ir < mc; ir += kMr)
            a.tile(ir, std::min(kMr, mc - ir), pb.panel(jr), pb.ldb, c.at(ic + ir, j), cols, o);
        }
      }
    }
  }
}

// Whether the kernels read B where it lies rather than packed: a row-major B
// whose panels are whole vectors (the kernels read 16 or 32 floats of each
// row: n a multiple of 16), in a product of few rows of C, where a packed
// copy would be read only a few times (m / kMr) and packing it costs as
// much as the product (Winograd's weight gradient, a Dense layer on a
// batch). Same FMAs in the same order: the same bits as packed.
bool b_in_place(Index m, Index n, const ConstView& b) {
  return b.col_stride == 1 && n % 16 == 0 && m <= kInPlaceRows;
}

void multiply_unchecked(View c, ConstView a, ConstView b, const Epilogue& e) {
  const Index m = c.rows, n = c.cols, kk = a.cols;
  if (m == 0 || n == 0) return;
  if (kk == 0) return multiply_empty(c, e);
  if (m < kThinRows && b.col_stride == 1) return multiply_thin(c, a, b, e);
  if (b_in_place(m, n, b))
    return multiply_blocked(
        MatrixC{c}, ViewA(a), [&](Index jc, Index, Index pc, Index) { return BBlock::in_place(b, pc, jc); }, e);
  thread_local Scratch b_scratch;
  float* pb = b_scratch.get(kKc * round_up(std::min(n, kNc), kNr));
  multiply_blocked(MatrixC{c}, ViewA(a), [&](Index jc, Index nc, Index pc, Index kc) {
    pack_b(b, pc, kc, jc, nc, pb, kc);
    return BBlock::packed(pb, kc);
  }, e);
}

// multiply_blocked's block_of for a B packed beforehand.
auto blocks_of(const PackedB& b) {
  return [&b](Index jc, Index, Index pc, Index kc) { return BBlock::packed(b.panels() + b.block_offset(jc, pc), kc); };
}

}  // namespace

void multiply(View c, ConstView a, ConstView b, const Epilogue& e) {
  check_shapes(c, a, b);
  multiply_unchecked(c, a, b, e);
}

// Blocks in the order the product takes them: column block jc (kNc columns,
// padded to whole panels) holds its K blocks one after the other, so block
// (jc, pc) starts at jc * K + padded(nc) * pc.
void PackedB::pack(ConstView b) {
  reshape(b.rows, b.cols);
  pack_rows(b, 0, b.rows);
}

void PackedB::reshape(Index rows, Index cols) {
  rows_ = rows, cols_ = cols;
  panels_.resize(static_cast<std::size_t>(round_up(cols_, kNr) * rows_));
}

void PackedB::pack_rows(ConstView b, Index r0, Index r1) {
  if (b.rows != rows_ || b.cols != cols_ || r0 < 0 || r1 > rows_)
    throw UsageError("PackedB::pack_rows: rows [" + std::to_string(r0) + ", " + std::to_string(r1) + ") of a " +
                     std::to_string(b.rows) + " x " + std::to_string(b.cols) + " matrix into panels shaped for " +
                     std::to_string(rows_) + " x " + std::to_string(cols_));
  for (Index jc = 0; jc < cols_; jc += kNc)
    for (Index pc = 0; pc < rows_; pc += kKc) {
      const Index nc = std::min(kNc, cols_ - jc), kc = std::min(kKc, rows_ - pc);
      const Index k0 = std::max(pc, r0), k1 = std::min(pc + kc, r1);
      if (k0 < k1) pack_b(b, k0, k1 - k0, jc, nc, panels_.data() + block_offset(jc, pc) + (k0 - pc) * kNr, kc);
    }
}

Index PackedB::block_offset(Index jc, Index pc) const {
  return jc * rows_ + round_up(std::min(kNc, cols_ - jc), kNr) * pc;
}

void multiply(View c, ConstView a, const PackedB& b, const Epilogue& e) {
  check_shapes(c, a, {nullptr, b.rows(), b.cols(), 0, 0});
  if (c.rows == 0 || c.cols == 0) return;
  if (a.cols == 0) return multiply_empty(c, e);
  multiply_blocked(MatrixC{c}, ViewA(a), blocks_of(b), e);
}

void multiply(View c, const GatheredRows& a, const PackedB& b, const Epilogue& e) {
  check_shapes(c, {nullptr, a.rows, a.cols(), 0, 0}, {nullptr, b.rows(), b.cols(), 0, 0});
  if (c.rows == 0 || c.cols == 0) return;
  if (a.cols() == 0) return multiply_empty(c, e);
  multiply_blocked(MatrixC{c}, GatheredA(a), blocks_of(b), e);
}

void multiply(const ScatteredRows& c, const GatheredRows& a, const PackedB& b, const Epilogue& e) {
  check_shapes({nullptr, c.rows, c.cols, 0, 0}, {nullptr, a.rows, a.cols(), 0, 0}, {nullptr, b.rows(), b.cols(), 0, 0});
  if (c.rows == 0 || c.cols == 0) return;
#if defined(LOOM_GEMM_AVX512)
  if (a.cols() > 0) return multiply_blocked(RowTableC{c}, GatheredA(a), blocks_of(b), e);
#endif
  // Through a buffer: C's rows in (when the product adds onto them), the product, the rows out.
  thread_local std::vector<float> buffer;
  buffer.resize(static_cast<std::size_t>(c.rows * c.cols));
  const auto bytes = static_cast<std::size_t>(c.cols) * sizeof(float);
  if (e.accumulate)
    for (Index i = 0; i < c.rows; ++i) std::memcpy(buffer.data() + i * c.cols, c.table[i], bytes);
  multiply(View{buffer.data(), c.rows, c.cols, c.cols, 1}, a, b, e);
  for (Index i = 0; i < c.rows; ++i) std::memcpy(c.table[i], buffer.data() + i * c.cols, bytes);
}

namespace {

// G written out (rows x cols) in this thread's buffer: the product's A where
// the kernels cannot read G^T through the table.
const float* written_out(const GatheredRows& g) {
  thread_local std::vector<float> buffer;
  buffer.resize(static_cast<std::size_t>(g.rows * g.cols()));
  for (Index i = 0; i < g.rows * g.segments; ++i)
    std::memcpy(buffer.data() + i * g.segment, g.table[i], static_cast<std::size_t>(g.segment) * sizeof(float));
  return buffer.data();
}

}  // namespace

void multiply_transposed(View c, const GatheredRows& g, ConstView b, const Epilogue& e) {
  check_shapes(c, {nullptr, g.cols(), g.rows, 0, 0}, b);
  if (c.rows == 0 || c.cols == 0) return;
  if (g.rows == 0) return multiply_empty(c, e);
#if defined(LOOM_GEMM_AVX512)
  // Runs of a multiple of 4 columns (a layer's channels: 32, 64, ...) are cut
  // into tiles of 12 and 8 rows of C (32 = 12 + 12 + 8), so no row is
  // computed twice. Other runs of at least 12 go in tiles of 12; a run's
  // last tile then starts 12 before its end, and its rows that the tile
  // before already covered go to a scratch row (computed, never stored in
  // C): 4 of 36 rows at 32 channels, which the cut saves.
  const bool cut = g.segment % 4 == 0 && g.segment >= 8;
  if ((cut || g.segment >= kMr) && c.col_stride == 1) {
    thread_local Scratch b_scratch, discard;
    float* pb = b_scratch.get(kKc * round_up(std::min(c.cols, kNc), kNr));
    float* scratch_row = discard.get(round_up(c.cols, kNr));  // a tile's discarded rows, at their columns
    for (Index jc = 0; jc < c.cols; jc += kNc) {
      const Index nc = std::min(kNc, c.cols - jc);
      for (Index pc = 0; pc < g.rows; pc += kKc) {
        const Index kc = std::min(kKc, g.rows - pc);
        pack_b(b, pc, kc, jc, nc, pb, kc);
        const Epilogue block = e.for_block(pc == 0, pc + kc == g.rows);
        for (Index s = 0; s < g.segments; ++s)
          for (Index done = 0; done < g.segment;) {
            const Index left = g.segment - done;
            // 12 while what is left can still be cut into 12s and 8s (not 16 = 12 + 4), else 8
            const Index rows = cut && (left < kMr || left == 16) ? 8 : kMr;
            const Index offset = cut ? done : std::min(done, g.segment - kMr), skip = done - offset;
            const Index first = s * g.segment + offset;  // C's row of the tile's row 0
            float* to[kMr];  // the tile's rows, the same for every panel
            for (Index i = 0; i < rows; ++i) to[i] = i < skip ? scratch_row : c.data + (first + i) * c.row_stride;
            for (Index jr = 0; jr < nc; jr += kNr) {
              const Index j = jc + jr;
              const auto tile = [&](auto height) {
                transposed_gathered_panel_kernel<decltype(height)::value>(
                    kc, g.table + pc * g.segments + s, g.segments, offset, pb + jr * kc, TableC{to, j},
                    std::min(kNr, nc - jr), block.from_column(j));
              };
              if (rows == 8)
                tile(std::integral_constant<Index, 8>{});
              else
                tile(std::integral_constant<Index, kMr>{});
            }
            done = offset + rows;
          }
      }
    }
    return;
  }
#endif
  multiply(c, ConstView{written_out(g), g.cols(), g.rows, 1, g.cols()}, b, e);
}

using detail::in_stripes;
using detail::worth_a_team;

void parallel_multiply(View c, ConstView a, ConstView b, const Epilogue& e) {
  check_shapes(c, a, b);
  const Index m = c.rows, n = c.cols;
  if (!worth_a_team(m, n, a.cols)) return multiply_unchecked(c, a, b, e);
  // Stripes of whole tiles along C's longer side; each thread packs what its stripe needs.
  if (m >= n)
    in_stripes(m, kMr, [&](Index begin, Index end) {
      multiply_unchecked({c.data + begin * c.row_stride, end - begin, n, c.row_stride, c.col_stride},
                         {a.data + begin * a.row_stride, end - begin, a.cols, a.row_stride, a.col_stride}, b, e);
    });
  else
    in_stripes(n, kNr, [&](Index begin, Index end) {
      multiply_unchecked({c.data + begin * c.col_stride, m, end - begin, c.row_stride, c.col_stride}, a,
                         {b.data + begin * b.col_stride, b.rows, end - begin, b.row_stride, b.col_stride},
                         e.from_column(begin));
    });
}

void parallel_multiply(View c, const GatheredRows& a, const PackedB& b, const Epilogue& e) {
  check_shapes(c, {nullptr, a.rows, a.cols(), 0, 0}, {nullptr, b.rows(), b.cols(), 0, 0});
  if (!worth_a_team(c.rows, c.cols, a.cols())) return multiply(c, a, b, e);
  in_stripes(c.rows, kMr, [&](Index begin, Index end) {  // the row table read from each stripe's first row
    multiply({c.data + begin * c.row_stride, end - begin, c.cols, c.row_stride, c.col_stride},
             {a.table + begin * a.segments, end - begin, a.segments, a.segment}, b, e);
  });
}

}  // namespace loom::gemm
