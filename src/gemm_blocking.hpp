#pragma once
// The blocked product's sizes: the register tile (kMr x kNr) of the kernels
// this build compiles (AVX-512, AVX2 or portable), the cache blocks (kKc,
// kMc, kNc), and how a kernel reads its rows of A (AForm).
//
// Part of loom::gemm's implementation, included by src/gemm.cpp alone: its
// names live in that file's anonymous namespace, one translation unit, so
// the compiler inlines across the parts as it did when they were one file.

#include "gemm_common.hpp"

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

}  // namespace
}  // namespace loom::gemm
