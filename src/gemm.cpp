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
//
// The parts, included here as one translation unit: gemm_blocking.hpp (the
// tile and block sizes), gemm_packing.hpp, gemm_kernels.hpp (the register
// tiles and the epilogue) and gemm_thin.hpp (products of a few rows). This
// file: how A is read (ViewA, GatheredA), the blocked loops, the public
// products and their parallel forms.

#include "loom/gemm.hpp"

#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "gemm_blocking.hpp"
#include "gemm_common.hpp"
#include "gemm_kernels.hpp"
#include "gemm_packing.hpp"
#include "gemm_thin.hpp"

namespace loom::gemm {
namespace {

using detail::check_shapes;

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
