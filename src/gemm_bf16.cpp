// The bfloat16 product of loom/gemm_bf16.hpp.
//
//   B rounded and packed once (PackedB): per block of kKc values of K, panels
//     of kNr columns, per pair of k the two values of each column side by
//     side in one 32-bit word
//   for each block of kKc values of K
//     for each block of kMc rows of A (this thread's stripe)
//       the rows, rounded: per row, its pairs of k in order
//       for each tile of kMr rows x kNr columns: the kernel, then C (+)= the
//         tile, with the epilogue after the last block of K
//
// A pair is one 32-bit word, low half the even k: the layout vdpbf16ps reads
// in both operands. An odd K ends with a pair whose high half is zero.

#include "loom/gemm_bf16.hpp"

#include <algorithm>
#include <bit>
#include <cstdint>
#include <cstring>
#include <vector>

#include "gemm_common.hpp"

#if defined(__AVX512BF16__) && defined(__AVX512F__) && defined(__AVX512BW__)
#define LOOM_GEMM_BF16_HARDWARE 1
#include <immintrin.h>
#endif

namespace loom::gemm::bf16 {

namespace {

constexpr Index kMr = 12;   // rows of a tile
constexpr Index kNr = 32;   // columns of a tile: two vectors of 16 float sums
constexpr Index kKc = 384;  // values of K per block (even): 192 pairs
constexpr Index kMc = 96;   // rows of A per packed block

using Word = std::uint32_t;  // a pair of bfloat16

using Scratch = detail::Scratch<Word>;

Word pair(float even, float odd) { return Word{round(even)} | Word{round(odd)} << 16; }

#if defined(LOOM_GEMM_BF16_HARDWARE)
// The same for 16 lanes: each lane's even and odd value rounded into one word.
// Both are rounded by one instruction (odd values in the upper half), then
// interleaved by one permutation: word i = even[i] | odd[i] << 16. (Widening
// each half and shifting took five and made g++ 12 warn inside its own headers.)
__m512i pairs16(__m512 even, __m512 odd) {
  const __m512i interleave = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8,  //
                                              23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
  return _mm512_permutexvar_epi16(interleave, std::bit_cast<__m512i>(_mm512_cvtne2ps_pbh(odd, even)));
}
#endif

// B's rows k0 .. k0 + depth - 1, all columns, into panels of kNr columns:
// panel j holds pairs x kNr words, columns past the edge zero.
void pack_b(const ConstView& b, Index k0, Index depth, Word* out) {
  const Index pairs = (depth + 1) / 2;
  for (Index j0 = 0; j0 < b.cols; j0 += kNr, out += pairs * kNr) {
    const Index w = std::min(kNr, b.cols - j0);
    for (Index p = 0; p < pairs; ++p) {
      const Index k = k0 + 2 * p;
      const bool odd_row = 2 * p + 1 < depth;
      const float* even = b.data + k * b.row_stride + j0 * b.col_stride;
      const float* odd = even + b.row_stride;
      Word* dst = out + p * kNr;
#if defined(LOOM_GEMM_BF16_HARDWARE)
      if (b.col_stride == 1 && w == kNr && odd_row) {  // two rows of 32 floats -> 32 words
        for (Index v = 0; v < kNr; v += 16)
          _mm512_store_si512(dst + v, pairs16(_mm512_loadu_ps(even + v), _mm512_loadu_ps(odd + v)));
        continue;
      }
#endif
      for (Index j = 0; j < w; ++j)
        dst[j] = pair(even[j * b.col_stride], odd_row ? odd[j * b.col_stride] : 0.0f);
      for (Index j = w; j < kNr; ++j) dst[j] = 0;
    }
  }
}

// n floats, step apart, rounded into n bfloat16 in order. A row of pairs is
// its values in k order as 16-bit halves (little-endian: the even k low), so
// packing A is rounding runs of it, wherever the runs lie.
void round_run(const float* src, Index step, Index n, std::uint16_t* dst) {
  Index k = 0;
#if defined(LOOM_GEMM_BF16_HARDWARE)
  if (step == 1) {
    for (; k + 16 <= n; k += 16)
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + k),
                          std::bit_cast<__m256i>(_mm512_cvtneps_pbh(_mm512_loadu_ps(src + k))));
    if (k < n) {
      const auto tail = static_cast<__mmask16>((1u << (n - k)) - 1);
      _mm256_mask_storeu_epi16(dst + k, tail, std::bit_cast<__m256i>(_mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(tail, src + k))));
    }
    return;
  }
#endif
  for (; k < n; ++k) dst[k] = round(src[k * step]);
}

// Rows of A from a strided view.
struct ViewRows {
  ConstView a;
  Index rows() const { return a.rows; }
  Index cols() const { return a.cols; }
  ViewRows stripe(Index begin, Index end) const {
    return {{a.data + begin * a.row_stride, end - begin, a.cols, a.row_stride, a.col_stride}};
  }
  void round(Index i, Index k0, Index depth, std::uint16_t* dst) const {
    round_run(a.data + i * a.row_stride + k0 * a.col_stride, a.col_stride, depth, dst);
  }
};

// A run of floats rounded, or of bfloat16 copied.
void take_run(const float* src, Index n, std::uint16_t* dst) { round_run(src, 1, n, dst); }
void take_run(const std::uint16_t* src, Index n, std::uint16_t* dst) {
  std::memcpy(dst, src, static_cast<std::size_t>(n) * sizeof(std::uint16_t));
}

// Rows of A through a row table (of float or of bfloat16 runs): each row its
// runs one after the other.
template <typename Table>
struct TableRows {
  Table a;
  Index rows() const { return a.rows; }
  Index cols() const { return a.cols(); }
  TableRows stripe(Index begin, Index end) const {
    return {{a.table + begin * a.segments, end - begin, a.segments, a.segment}};
  }
  void round(Index i, Index k0, Index depth, std::uint16_t* dst) const {
    const auto* runs = a.table + i * a.segments + k0 / a.segment;
    // the runs that k0 .. k0 + depth - 1 cross, the first from its offset
    for (Index k = 0, at = k0 % a.segment; k < depth; at = 0, ++runs) {
      const Index n = std::min(a.segment - at, depth - k);
      take_run(*runs + at, n, dst + k);
      k += n;
    }
  }
};

// A's rows i0 .. i0 + rows - 1, values k0 .. k0 + depth - 1, row by row:
// each row its pairs in order (ld = pairs words; an odd depth ends with a
// zero half).
template <typename Rows>
void pack_a(const Rows& a, Index i0, Index rows, Index k0, Index depth, Word* out) {
  const Index pairs = (depth + 1) / 2;
  for (Index i = 0; i < rows; ++i) {
    auto* dst = reinterpret_cast<std::uint16_t*>(out + i * pairs);
    a.round(i0 + i, k0, depth, dst);
    if (depth % 2) dst[depth] = 0;
  }
}

// Packing an A stored transposed (its columns contiguous), read along its
// columns: per pair of k, two runs of rows (even and odd k; no odd run past
// an odd depth) rounded and paired, each word stored to its row, `pairs`
// words apart. Row by row, each value would be a strided read.
class ColumnPairs {
 public:
  explicit ColumnPairs(Index pairs) : pairs_(pairs) {
#if defined(LOOM_GEMM_BF16_HARDWARE)
    to_row_ = _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                                 _mm512_set1_epi32(static_cast<int>(pairs)));  // 16 rows' offsets
#endif
  }
  // Rows 0 .. n - 1 of the packed block from `out` (already at the pair's word).
  void operator()(const float* even, const float* odd, Index n, Word* out) const {
    Index i = 0;
#if defined(LOOM_GEMM_BF16_HARDWARE)
    for (; i + 16 <= n; i += 16) {
      const __m512 e = _mm512_loadu_ps(even + i), o = odd ? _mm512_loadu_ps(odd + i) : _mm512_setzero_ps();
      _mm512_i32scatter_epi32(out + i * pairs_, to_row_, pairs16(e, o), 4);
    }
#endif
    for (; i < n; ++i) out[i * pairs_] = pair(even[i], odd ? odd[i] : 0.0f);
  }

 private:
  Index pairs_;
#if defined(LOOM_GEMM_BF16_HARDWARE)
  __m512i to_row_;
#endif
};

// A weight gradient's colᵀ or Vᵀ as a transposed view.
void pack_a(const ViewRows& v, Index i0, Index rows, Index k0, Index depth, Word* out) {
  const ConstView& a = v.a;
  if (a.row_stride != 1 || a.col_stride == 1) return pack_a<ViewRows>(v, i0, rows, k0, depth, out);
  const Index pairs = (depth + 1) / 2;
  const ColumnPairs pair_up(pairs);
  for (Index p = 0; p < pairs; ++p) {
    const float* even = a.data + i0 + (k0 + 2 * p) * a.col_stride;
    pair_up(even, 2 * p + 1 < depth ? even + a.col_stride : nullptr, rows, out + p);
  }
}

// A = Gᵀ, G read through its row table (a weight gradient's patches where
// they lie): A's row i is G's column `first + i`, A's k is G's row k. A pair
// of k is two rows of G; A's rows cut G's runs, each piece contiguous.
struct TransposedTableRows {
  gemm::GatheredRows g;
  Index first = 0, count = 0;  // G's columns first .. first + count - 1 (a stripe's)
  Index rows() const { return count; }
  Index cols() const { return g.rows; }
  TransposedTableRows stripe(Index begin, Index end) const { return {g, first + begin, end - begin}; }
};

void pack_a(const TransposedTableRows& t, Index i0, Index rows, Index k0, Index depth, Word* out) {
  const Index pairs = (depth + 1) / 2;
  const ColumnPairs pair_up(pairs);
  for (Index p = 0; p < pairs; ++p) {
    const float* const* even = t.g.table + (k0 + 2 * p) * t.g.segments;
    const float* const* odd = 2 * p + 1 < depth ? even + t.g.segments : nullptr;
    for (Index i = 0; i < rows;) {
      const Index column = t.first + i0 + i, s = column / t.g.segment, at = column % t.g.segment;
      const Index n = std::min(t.g.segment - at, rows - i);
      pair_up(even[s] + at, odd ? odd[s] + at : nullptr, n, out + i * pairs + p);
      i += n;
    }
  }
}

// Whether an epilogue only assigns or adds: no bias, map or ReLU.
[[maybe_unused]] bool plain(const Epilogue& e) { return !e.bias && !e.normalize && !e.relu; }

// C (rows x cols of a tile) = (or += with e.accumulate) the tile's sums, then
// + bias, the map and ReLU (e is the tile's, from its first column).
void store(const float* sums, Index rows, Index cols, float* c, Index rs, Index cs, const Epilogue& e) {
  for (Index i = 0; i < rows; ++i)
    for (Index j = 0; j < cols; ++j) {
      float& out = c[i * rs + j * cs];
      float v = e.accumulate ? out + sums[i * kNr + j] : sums[i * kNr + j];
      if (e.bias) v += e.bias[j];
      if (e.normalize) v = e.normalize(v, j);
      if (e.relu) v = std::max(v, 0.0f);
      out = v;
    }
}

#if defined(LOOM_GEMM_BF16_HARDWARE)

// kMr rows (each a pointer to its packed pairs) times a panel: 24 float sums
// of 16 lanes, per pair one broadcast word of A and two vectors of B.
void kernel(Index pairs, const Word* const* a, const Word* b, float* c, Index rs, Index cs, Index rows, Index cols,
            const Epilogue& e) {
  __m512 acc[kMr][2];
  for (auto& row : acc) row[0] = row[1] = _mm512_setzero_ps();
  for (Index p = 0; p < pairs; ++p) {
    const auto b0 = std::bit_cast<__m512bh>(_mm512_load_si512(b + p * kNr));
    const auto b1 = std::bit_cast<__m512bh>(_mm512_load_si512(b + p * kNr + 16));
    for (Index i = 0; i < kMr; ++i) {
      const auto x = std::bit_cast<__m512bh>(_mm512_set1_epi32(static_cast<int>(a[i][p])));
      acc[i][0] = _mm512_dpbf16_ps(acc[i][0], x, b0);
      acc[i][1] = _mm512_dpbf16_ps(acc[i][1], x, b1);
    }
  }
  if (cs == 1 && cols == kNr && plain(e)) {
    for (Index i = 0; i < rows; ++i) {
      float* out = c + i * rs;
      for (int v = 0; v < 2; ++v) {
        const __m512 s = e.accumulate ? _mm512_add_ps(_mm512_loadu_ps(out + 16 * v), acc[i][v]) : acc[i][v];
        _mm512_storeu_ps(out + 16 * v, s);
      }
    }
    return;
  }
  alignas(64) float sums[kMr * kNr];
  for (Index i = 0; i < kMr; ++i) {
    _mm512_store_ps(sums + i * kNr, acc[i][0]);
    _mm512_store_ps(sums + i * kNr + 16, acc[i][1]);
  }
  store(sums, rows, cols, c, rs, cs, e);
}

#else

// The same sums without AVX512-BF16: each pair's two products (exact in
// float) added one after the other, odd k first, as vdpbf16ps does.
void kernel(Index pairs, const Word* const* a, const Word* b, float* c, Index rs, Index cs, Index rows, Index cols,
            const Epilogue& e) {
  float sums[kMr * kNr] = {};
  for (Index p = 0; p < pairs; ++p)
    for (Index i = 0; i < kMr; ++i) {
      const Word x = a[i][p];
      const float x0 = widen(static_cast<std::uint16_t>(x)), x1 = widen(static_cast<std::uint16_t>(x >> 16));
      for (Index j = 0; j < kNr; ++j) {
        const Word y = b[p * kNr + j];
        float& s = sums[i * kNr + j];
        s += x1 * widen(static_cast<std::uint16_t>(y >> 16));
        s += x0 * widen(static_cast<std::uint16_t>(y));
      }
    }
  store(sums, rows, cols, c, rs, cs, e);
}

#endif

template <typename Rows>
void multiply_unchecked(View c, const Rows& a, const PackedB& b, const Epilogue& e) {
  const Index m = c.rows, n = c.cols, k = a.cols();
  if (m == 0 || n == 0) return;
  if (k == 0) {  // C = (C +) 0, then the epilogue
    const float zeros[kMr * kNr] = {};
    for (Index i0 = 0; i0 < m; i0 += kMr)
      for (Index j0 = 0; j0 < n; j0 += kNr)
        store(zeros, std::min(kMr, m - i0), std::min(kNr, n - j0), c.data + i0 * c.row_stride + j0 * c.col_stride,
              c.row_stride, c.col_stride, e.from_column(j0));
    return;
  }
  thread_local Scratch a_scratch;
  const Index panels = b.panels();
  for (Index k0 = 0; k0 < k; k0 += kKc) {
    const Index depth = std::min(kKc, k - k0), pairs = (depth + 1) / 2;
    const Epilogue block = e.for_block(k0 == 0, k0 + depth == k);
    const Word* pb = b.block(k0);
    Word* pa = a_scratch.get(kMc * pairs);
    for (Index i0 = 0; i0 < m; i0 += kMc) {
      const Index rows = std::min(kMc, m - i0);
      pack_a(a, i0, rows, k0, depth, pa);
      for (Index ir = 0; ir < rows; ir += kMr) {
        const Index r = std::min(kMr, rows - ir);
        const Word* row[kMr];
        for (Index i = 0; i < kMr; ++i) row[i] = pa + (ir + std::min(i, r - 1)) * pairs;  // past the edge: computed, never stored
        for (Index jp = 0; jp < panels; ++jp) {
          const Index j0 = jp * kNr;
          kernel(pairs, row, pb + jp * pairs * kNr, c.data + (i0 + ir) * c.row_stride + j0 * c.col_stride,
                 c.row_stride, c.col_stride, r, std::min(kNr, n - j0), block.from_column(j0));
        }
      }
    }
  }
}

template <typename Rows>
void parallel_unchecked(View c, const Rows& a, const PackedB& b, const Epilogue& e) {
  if (!detail::worth_a_team(c.rows, c.cols, a.cols())) return multiply_unchecked(c, a, b, e);
  // Stripes of whole tiles of rows, B packed once for all of them.
  detail::in_stripes(c.rows, kMr, [&](Index begin, Index end) {
    multiply_unchecked({c.data + begin * c.row_stride, end - begin, c.cols, c.row_stride, c.col_stride},
                       a.stripe(begin, end), b, e);
  });
}

// Every public product: the shapes checked, then on this thread or a team.
template <typename Rows>
void run(bool parallel, View c, const Rows& a, const PackedB& b, const Epilogue& e) {
  detail::check_shapes(c, {nullptr, a.rows(), a.cols(), 0, 0}, {nullptr, b.rows(), b.cols(), 0, 0});
  if (parallel)
    parallel_unchecked(c, a, b, e);
  else
    multiply_unchecked(c, a, b, e);
}

// B packed for one call, in this thread's storage (kept across calls, so a
// product allocates nothing once warm).
const PackedB& packed_for_call(ConstView b) {
  thread_local PackedB packed;
  packed.pack(b);
  return packed;
}

}  // namespace

std::uint16_t round(float x) {
  const auto u = std::bit_cast<std::uint32_t>(x);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<std::uint16_t>((u >> 16) | 0x40u);  // NaN, kept quiet
  return static_cast<std::uint16_t>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

float widen(std::uint16_t h) { return std::bit_cast<float>(std::uint32_t{h} << 16); }

bool hardware() {
#if defined(LOOM_GEMM_BF16_HARDWARE)
  return true;
#else
  return false;
#endif
}

void PackedB::pack(ConstView b) {
  rows_ = b.rows;
  cols_ = b.cols;
  const Index panels = this->panels();
  const Index pairs = b.rows / kKc * (kKc / 2) + (b.rows % kKc + 1) / 2;  // over the blocks of K
  words_.resize(static_cast<std::size_t>(panels * kNr * pairs));  // pack_b writes every word, padding included
  for (Index k0 = 0; k0 < b.rows; k0 += kKc) pack_b(b, k0, std::min(kKc, b.rows - k0), words_.data() + block_offset(k0));
}

Index PackedB::panels() const { return (cols_ + kNr - 1) / kNr; }

// Block k0's panels follow those of the blocks before it, of kKc / 2 pairs each.
Index PackedB::block_offset(Index k0) const { return panels() * kNr * (k0 / 2); }

void multiply(View c, ConstView a, const PackedB& b, const Epilogue& e) { run(false, c, ViewRows{a}, b, e); }
void multiply(View c, ConstView a, ConstView b, const Epilogue& e) {
  run(false, c, ViewRows{a}, packed_for_call(b), e);
}
void multiply(View c, const gemm::GatheredRows& a, const PackedB& b, const Epilogue& e) {
  run(false, c, TableRows<gemm::GatheredRows>{a}, b, e);
}
void multiply(View c, const GatheredRows& a, const PackedB& b, const Epilogue& e) {
  run(false, c, TableRows<GatheredRows>{a}, b, e);
}

void multiply_transposed(View c, const gemm::GatheredRows& g, ConstView b, const Epilogue& e) {
  run(false, c, TransposedTableRows{g, 0, g.cols()}, packed_for_call(b), e);
}

void parallel_multiply(View c, ConstView a, const PackedB& b, const Epilogue& e) { run(true, c, ViewRows{a}, b, e); }
void parallel_multiply(View c, ConstView a, ConstView b, const Epilogue& e) {
  run(true, c, ViewRows{a}, packed_for_call(b), e);
}
void parallel_multiply(View c, const gemm::GatheredRows& a, const PackedB& b, const Epilogue& e) {
  run(true, c, TableRows<gemm::GatheredRows>{a}, b, e);
}
void parallel_multiply(View c, const GatheredRows& a, const PackedB& b, const Epilogue& e) {
  run(true, c, TableRows<GatheredRows>{a}, b, e);
}

void round_into(const float* src, Index n, std::uint16_t* dst) { round_run(src, 1, n, dst); }

}  // namespace loom::gemm::bf16
