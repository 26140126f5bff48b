#pragma once
// Packing: blocks of A into panels of kMr rows and blocks of B into panels
// of kNr columns, as the kernels (gemm_kernels.hpp) read them; a column-major
// B is transposed by squares in registers.
//
// Part of loom::gemm's implementation, included by src/gemm.cpp alone: its
// names live in that file's anonymous namespace, one translation unit, so
// the compiler inlines across the parts as it did when they were one file.

#include <algorithm>
#include <cstring>

#include "gemm_blocking.hpp"

namespace loom::gemm {
namespace {

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

}  // namespace
}  // namespace loom::gemm
