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
#include <vector>

#include <Eigen/Core>

#include "loom/gemm.hpp"

namespace loom::gemm::bf16 {

/// x rounded to the nearest bfloat16 (ties to even; NaN stays NaN): its 16 bits.
std::uint16_t round(float x);

/// The float a bfloat16 stands for (exact).
float widen(std::uint16_t h);

/// Whether the products run on vdpbf16ps: this build targets AVX512-BF16.
bool hardware();

/// B rounded and packed once for many products with it (the same weights
/// against many blocks of A, or one product's threads): per block of K, panels
/// of 32 columns, a pair of k in each 32-bit word.
class PackedB {
 public:
  PackedB() = default;
  explicit PackedB(ConstView b) { pack(b); }
  void pack(ConstView b);
  Index rows() const { return rows_; }
  Index cols() const { return cols_; }
  Index panels() const;
  /// Block k0's panels (k0 a multiple of the product's block of K).
  const std::uint32_t* block(Index k0) const { return words_.data() + block_offset(k0); }

 private:
  Index block_offset(Index k0) const;
  Index rows_ = 0, cols_ = 0;
  std::vector<std::uint32_t, Eigen::aligned_allocator<std::uint32_t>> words_;  // aligned: the kernel's vector loads
};

/// A row table of runs already in bfloat16: row i the runs table[i * segments
/// + s], `segment` values each, one after the other. Patches of an image a
/// layer wrote in bfloat16, read at half the bytes of float.
struct GatheredRows {
  const std::uint16_t* const* table;
  Index rows, segments, segment;
  Index cols() const { return segments * segment; }
};

/// C = bf16(A) bf16(B) with the epilogue (as gemm::multiply's: + C, + bias,
/// the map, ReLU, applied once the sums are done), on the calling thread.
/// Shapes must agree: A (M, K), B (K, N), C (M, N); views of any strides. A
/// may be read through a row table of float runs (a convolution's patches
/// where they lie: rounded as they are packed) or of runs already in
/// bfloat16 (copied). A ConstView B is packed for the call.
void multiply(View c, ConstView a, const PackedB& b, const Epilogue& e = {});
void multiply(View c, ConstView a, ConstView b, const Epilogue& e = {});
void multiply(View c, const gemm::GatheredRows& a, const PackedB& b, const Epilogue& e = {});
void multiply(View c, const GatheredRows& a, const PackedB& b, const Epilogue& e = {});

/// C = bf16(Gᵀ) bf16(B) with the epilogue, on the calling thread: A is G
/// transposed, G (K, M) read through its row table of float runs (a weight
/// gradient's colᵀ dZ with the patches where they lie, as
/// gemm::multiply_transposed reads them in float). B (K, N) is packed for the call.
void multiply_transposed(View c, const gemm::GatheredRows& g, ConstView b, const Epilogue& e = {});

/// The same products over the OpenMP threads, by stripes of rows of C, when
/// large enough to be worth a team; bitwise the results of multiply().
void parallel_multiply(View c, ConstView a, const PackedB& b, const Epilogue& e = {});
void parallel_multiply(View c, ConstView a, ConstView b, const Epilogue& e = {});
void parallel_multiply(View c, const gemm::GatheredRows& a, const PackedB& b, const Epilogue& e = {});
void parallel_multiply(View c, const GatheredRows& a, const PackedB& b, const Epilogue& e = {});

/// n floats rounded to bfloat16 (as round(), vectorised where it can be).
void round_into(const float* src, Index n, std::uint16_t* dst);

}  // namespace loom::gemm::bf16
