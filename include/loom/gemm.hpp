#pragma once
// loom's matrix product: C = A B (+ C) (+ bias) (then a per-column affine map)
// (then ReLU), single precision,
// on strided views, so transposed and sliced operands cost no copy.
//
// Why not Eigen's product: on AVX2 machines Eigen's general product reaches
// about a third of the FMA peak on the thin, tall shapes of a CNN (K of 9 to
// 600, N of 32 to 256), and OpenBLAS about half again as much. This one packs
// both operands into cache-sized panels (Goto/BLIS blocking: A blocks of
// kMc x kKc in L2, B panels in L1) and runs a register kernel of FMAs on
// them (6 x 16 with AVX2, 12 x 32 with AVX-512: the same sums, in the same
// order), or reads an operand in place where a packed copy would be read only
// a few times (src/gemm.cpp: b_in_place; a column-major B is
// packed by squares transposed in registers); bias and ReLU
// are applied on the last pass over each tile, while it is still in registers. See docs/architecture.md.
//
// Results: every element of C is summed in the same order (K in blocks of
// kKc, each block in order) whatever the thread count and however C is split,
// so products are bitwise identical on 1 and many threads.
//
// Thread safety: callable from many threads at once (packing scratch is per thread).

#include <vector>

#include "loom/channel_normalization.hpp"
#include "loom/tensor.hpp"

namespace loom::gemm {

/// A read-only strided matrix: element (i, j) at data[i * row_stride + j * col_stride].
struct ConstView {
  const float* data;
  Index rows, cols, row_stride, col_stride;
};

/// A writable strided matrix.
struct View {
  float* data;
  Index rows, cols, row_stride, col_stride;
};

/// What happens to each element of C = A B on the way out.
struct Epilogue {
  bool accumulate = false;        // C += A B instead of C = A B
  const float* bias = nullptr;    // then + bias[j] on every row (one value per column of C)
  bool relu = false;              // last, max(0, .)
  ChannelNormalization normalize; // before the ReLU, normalize(., j): a BatchNormalization's map per column

  /// This epilogue for the columns from j on (a tile's bias and map start there).
  Epilogue from_column(Index j) const { return {accumulate, bias ? bias + j : nullptr, relu, normalize.from(j)}; }
  /// The epilogue of one block of K in a sum over several: C is added onto
  /// after the first, and bias, map and ReLU come with the last.
  Epilogue for_block(bool first, bool last) const {
    if (last) return {!first || accumulate, bias, relu, normalize};
    return {!first || accumulate, nullptr, false, {}};
  }
};

/// C = A B (with the epilogue) on the calling thread. Shapes must agree:
/// A (M, K), B (K, N), C (M, N).
void multiply(View c, ConstView a, ConstView b, const Epilogue& e = {});

/// The same product spread over the OpenMP threads (row or column stripes of
/// C, whichever is longer) when it is large enough to be worth a team, and on
/// the calling thread otherwise or inside a parallel region.
void parallel_multiply(View c, ConstView a, ConstView b, const Epilogue& e = {});

/// B packed once for many products with it (the same weights against many
/// blocks of A, as Winograd's transformed kernel against every chunk of
/// tiles): the panels multiply() would otherwise pack again on every call.
/// Products with it give the same bits as with B itself.
class PackedB {
 public:
  PackedB() = default;
  explicit PackedB(ConstView b) { pack(b); }
  /// Packs b (reusing the storage).
  void pack(ConstView b);
  /// Shapes the panels for a (rows, cols) B, to be filled by pack_rows.
  void reshape(Index rows, Index cols);
  /// Packs rows [r0, r1) of b, whose shape reshape gave, leaving the others
  /// as they are: threads that each made some rows of B pack those rows
  /// themselves, while they are in their own cache, instead of one thread
  /// reading every row from the others'. Rows packed by pieces are the bits
  /// pack(b) gives.
  void pack_rows(ConstView b, Index r0, Index r1);
  Index rows() const { return rows_; }
  Index cols() const { return cols_; }
  const float* panels() const { return panels_.data(); }
  /// Where the panels of column block jc, K block pc start (see src/gemm.cpp).
  Index block_offset(Index jc, Index pc) const;

 private:
  Index rows_ = 0, cols_ = 0;
  std::vector<float, Eigen::aligned_allocator<float>> panels_;  // aligned: the kernel's vector loads
};

/// C = A B (with the epilogue) on the calling thread, B packed beforehand.
void multiply(View c, ConstView a, const PackedB& b, const Epilogue& e = {});

/// A read through a table of pointers: A (rows, segments * segment), row i
/// the runs table[i * segments + s] (s = 0 .. segments - 1, `segment` floats
/// each) one after the other. A convolution's patch matrix without the copy:
/// each run is a kernel row's taps in the image (or zeros), read where it lies.
struct GatheredRows {
  const float* const* table;
  Index rows, segments, segment;
  Index cols() const { return segments * segment; }
};

/// Whether products with a GatheredRows A read it in place: with AVX-512
/// (the kernel broadcasts each row from its own pointer). Other builds pack
/// A from the table, which measured twice as slow as writing the rows out
/// and reading them in place (an AVX2 build, docs/architecture.md): correct,
/// but not worth choosing.
#if defined(__AVX512F__)
inline constexpr bool kGatheredRowsInPlace = true;
#else
inline constexpr bool kGatheredRowsInPlace = false;
#endif

/// C = A B for A read through its row table, bitwise the product with A
/// written out (the same sums in the same order). On the calling thread, or
/// (parallel_multiply) in stripes of rows over the OpenMP threads when large
/// enough and not inside a parallel region.
void multiply(View c, const GatheredRows& a, const PackedB& b, const Epilogue& e = {});
void parallel_multiply(View c, const GatheredRows& a, const PackedB& b, const Epilogue& e = {});

/// C written through a table of row pointers: row i at table[i], `cols`
/// floats side by side. A strided convolution's phase of dx, whose pixels lie
/// strides apart in the image.
struct ScatteredRows {
  float* const* table;
  Index rows, cols;
};

/// C = A B (with the epilogue; accumulate adds onto what C's rows hold), C
/// written through its row table: bitwise the product into a matrix whose
/// rows are then copied out. With AVX-512 each tile goes from the registers
/// to its rows; other builds go through a buffer. On the calling thread.
void multiply(const ScatteredRows& c, const GatheredRows& a, const PackedB& b, const Epilogue& e = {});

/// C = G^T B for G read through its row table (G (rows, segments * segment)),
/// bitwise the product with G written out and read transposed: a
/// convolution's weight gradient col^T dZ without writing the patches. With
/// AVX-512 (and runs of at least 12 floats, C row-major) the kernels read
/// G^T's tiles in place, each from one run per k; otherwise G is written out
/// first. On the calling thread.
void multiply_transposed(View c, const GatheredRows& g, ConstView b, const Epilogue& e = {});

/// Views of Eigen matrices and expressions with direct access (Map, Matrix,
/// Block, Transpose of those): no copy.
template <typename M>
ConstView view(const M& m) {
  return {m.data(), m.rows(), m.cols(), m.rowStride(), m.colStride()};
}
template <typename M>
View mutable_view(M&& m) {
  return {m.data(), m.rows(), m.cols(), m.rowStride(), m.colStride()};
}

}  // namespace loom::gemm
