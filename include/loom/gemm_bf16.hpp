#pragma once
// A bfloat16 matrix product: C = bf16(A) bf16(B), summed in float. The first
// measured piece of a bfloat16 engine (docs/benchmarks.md, "A bfloat16
// product"); no layer uses it yet.
//
// Both operands are rounded to bfloat16 (nearest, ties to even) as they are
// packed, half the bytes of float. Along K the products go in pairs: where
// the CPU has AVX512-BF16, one vdpbf16ps adds 16 lanes' pairs of products onto
// 16 float sums, twice the multiply-adds of an FMA (peak/bf16_dot against
// peak/fma in loom_bench); elsewhere a portable loop adds the two products of
// a pair one after the other. The product of two bfloat16 is exact in float,
// so the error of a result is bfloat16's rounding of the operands (at most a
// relative 2^-8 each) plus float's of the sums.
//
// Results: every element of C is summed in the same order (K in blocks of
// kKc, pairs in order) whatever the thread count and however C is split.
//
// Thread safety: callable from many threads at once (packing scratch is per thread).

#include <cstdint>

#include "loom/gemm.hpp"

namespace loom::gemm::bf16 {

/// x rounded to the nearest bfloat16 (ties to even; NaN stays NaN): its 16 bits.
std::uint16_t round(float x);

/// The float a bfloat16 stands for (exact).
float widen(std::uint16_t h);

/// Whether the products run on vdpbf16ps: this build targets AVX512-BF16.
bool hardware();

/// C = bf16(A) bf16(B), or C += with accumulate, on the calling thread.
/// Shapes must agree: A (M, K), B (K, N), C (M, N); any strides.
void multiply(View c, ConstView a, ConstView b, bool accumulate = false);

/// The same product over the OpenMP threads, by stripes of rows of C, when it
/// is large enough to be worth a team; bitwise the result of multiply().
void parallel_multiply(View c, ConstView a, ConstView b, bool accumulate = false);

/// The same with A read through a row table (a convolution's patches where
/// they lie, gemm::GatheredRows): its runs rounded as they are packed.
void multiply(View c, const gemm::GatheredRows& a, ConstView b, bool accumulate = false);
void parallel_multiply(View c, const gemm::GatheredRows& a, ConstView b, bool accumulate = false);

/// A row table of runs already in bfloat16: row i the runs table[i * segments
/// + s], `segment` values each, one after the other. Patches of an image a
/// layer wrote in bfloat16, read at half the bytes of float.
struct GatheredRows {
  const std::uint16_t* const* table;
  Index rows, segments, segment;
  Index cols() const { return segments * segment; }
};

/// C = A B for A's runs in bfloat16 (copied as they are packed): the bits of
/// the product with the same runs in float, rounded by the product.
void multiply(View c, const GatheredRows& a, ConstView b, bool accumulate = false);
void parallel_multiply(View c, const GatheredRows& a, ConstView b, bool accumulate = false);

/// n floats rounded to bfloat16 (as round(), vectorised where it can be).
void round_into(const float* src, Index n, std::uint16_t* dst);

}  // namespace loom::gemm::bf16
