// loom::search::screen_upper_bounds (loom/search/screening_codes.hpp): the
// inner loop of exact search. Integer dot products of 16-bit query codes
// with 8-bit item codes (the rotated vectors' heads), turned into upper bounds of the exact scores and
// compared with each query's floor, in registers.
//
// The main register tile is 4 queries x 2 groups (16 items): 8 accumulators
// of 8 32-bit lanes, a lane per item. Each step over a pair of dimensions
// loads a group's 16 bytes, widens them to 16 bits (8 items x 2 dimensions)
// and, for each query, multiplies them by the query's pair broadcast to every
// lane (_mm256_madd_epi16 sums the pair). A group's codes are widened once
// per tile and serve all 4 queries. Edge tiles (fewer queries, one group)
// take the same path with smaller counts.

#include <cstdint>
#include <cstring>

#include "loom/search/screening_codes.hpp"

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define LOOM_SCREEN_AVX2 1
#endif

namespace loom::search {
namespace {

constexpr Index kGroup = ScreeningCodes::kGroup;

// A query's values 2p and 2p + 1 as one 32-bit word, 2p in the low half.
inline std::int32_t pair_at(const std::int16_t* q, Index p) {
  std::int32_t w;
  std::memcpy(&w, q + 2 * p, sizeof w);
  return w;
}

// Where one query's row of a tile goes.
struct Row {
  float scale, miss, norm, tail, floor;
  std::uint8_t* masks;   // this query's masks, group 0 of the tile first
};

Row row_of(const ScreenQueries& q, Index i, std::uint8_t* masks, Index groups) {
  const auto at = static_cast<std::size_t>(i);
  return {q.scale[at], q.miss[at], q.norm[at], q.tail[at], q.floor[at], masks + i * groups};
}

#if LOOM_SCREEN_AVX2

// For one group and each of qn queries: upper = dot * (q.scale * x.scale)
// + (q.miss * x.norm + q.norm * x.reach + q.tail * x.tail), and the mask of
// upper >= floor: the bounds themselves are not kept (refine bounds the
// items that pass again, more tightly).
void finish(const __m256i* dots, Index qn, const ScreenItems& items, Index item, const Row* rows) {
  const __m256 scale = _mm256_loadu_ps(items.scale + item), norm = _mm256_loadu_ps(items.norm + item),
               reach = _mm256_loadu_ps(items.reach + item), tail = _mm256_loadu_ps(items.tail + item);
  for (Index i = 0; i < qn; ++i) {
    const Row& r = rows[i];
    __m256 bound = _mm256_mul_ps(_mm256_set1_ps(r.tail), tail);
    bound = _mm256_fmadd_ps(_mm256_set1_ps(r.norm), reach, bound);
    bound = _mm256_fmadd_ps(_mm256_set1_ps(r.miss), norm, bound);
    const __m256 upper = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dots[i]), _mm256_mul_ps(_mm256_set1_ps(r.scale), scale), bound);
    const int mask = _mm256_movemask_ps(_mm256_cmp_ps(upper, _mm256_set1_ps(r.floor), _CMP_GE_OQ));
    r.masks[item / kGroup] = static_cast<std::uint8_t>(mask);
  }
}

inline __m256i widen(const std::int8_t* codes) {
  return _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(codes)));
}
inline __m256i madd_add(__m256i acc, __m256i x, __m256i w) { return _mm256_add_epi32(acc, _mm256_madd_epi16(x, w)); }

// 4 queries x 2 groups, written out: as arrays of vectors, g++ 12 kept one
// accumulator on the stack.
void tile_4x2(const std::int8_t* codes, Index group_bytes, Index pairs, const std::int16_t* q, Index stride,
              __m256i (&acc)[4][2]) {
  __m256i a00 = _mm256_setzero_si256(), a01 = a00, a10 = a00, a11 = a00, a20 = a00, a21 = a00, a30 = a00, a31 = a00;
  const std::int16_t *q0 = q, *q1 = q + stride, *q2 = q + 2 * stride, *q3 = q + 3 * stride;
  for (Index p = 0; p < pairs; ++p) {
    const __m256i x0 = widen(codes + p * 2 * kGroup), x1 = widen(codes + group_bytes + p * 2 * kGroup);
    __m256i w = _mm256_set1_epi32(pair_at(q0, p));
    a00 = madd_add(a00, x0, w), a01 = madd_add(a01, x1, w);
    w = _mm256_set1_epi32(pair_at(q1, p));
    a10 = madd_add(a10, x0, w), a11 = madd_add(a11, x1, w);
    w = _mm256_set1_epi32(pair_at(q2, p));
    a20 = madd_add(a20, x0, w), a21 = madd_add(a21, x1, w);
    w = _mm256_set1_epi32(pair_at(q3, p));
    a30 = madd_add(a30, x0, w), a31 = madd_add(a31, x1, w);
  }
  acc[0][0] = a00, acc[0][1] = a01, acc[1][0] = a10, acc[1][1] = a11;
  acc[2][0] = a20, acc[2][1] = a21, acc[3][0] = a30, acc[3][1] = a31;
}

// Any q <= 4 queries x one group; two sums per query, even and odd pairs,
// so that a lone query does not wait on one chain of additions.
void tile_edge(const std::int8_t* codes, Index pairs, const std::int16_t* q, Index stride, Index qn, __m256i (&acc)[4][2]) {
  for (Index i = 0; i < qn; ++i) {
    const std::int16_t* w = q + i * stride;
    __m256i even = _mm256_setzero_si256(), odd = even;
    Index p = 0;
    for (; p + 2 <= pairs; p += 2) {
      even = madd_add(even, widen(codes + p * 2 * kGroup), _mm256_set1_epi32(pair_at(w, p)));
      odd = madd_add(odd, widen(codes + (p + 1) * 2 * kGroup), _mm256_set1_epi32(pair_at(w, p + 1)));
    }
    if (p < pairs) even = madd_add(even, widen(codes + p * 2 * kGroup), _mm256_set1_epi32(pair_at(w, p)));
    acc[i][0] = _mm256_add_epi32(even, odd);
  }
}

}  // namespace

std::int32_t codes_dot(const std::int16_t* q, const std::int8_t* x, Index width) {
  __m256i even = _mm256_setzero_si256(), odd = even;
  Index j = 0;
  for (; j + 32 <= width; j += 32) {
    even = madd_add(even, widen(x + j), _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + j)));
    odd = madd_add(odd, widen(x + j + 16), _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + j + 16)));
  }
  for (; j + 16 <= width; j += 16) even = madd_add(even, widen(x + j), _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + j)));
  const __m256i sum = _mm256_add_epi32(even, odd);
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(sum), _mm256_extracti128_si256(sum, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
  std::int32_t dot = _mm_cvtsi128_si32(s);
  for (; j < width; ++j) dot += static_cast<std::int32_t>(q[j]) * x[j];
  return dot;
}

namespace {

#else

// Portable: the same sums and bounds, item by item.
void finish(const std::int32_t* dot, const ScreenItems& items, Index item, const Row& r) {
  std::uint8_t mask = 0;
  for (Index j = 0; j < kGroup; ++j) {
    const Index i = item + j;
    const float upper = static_cast<float>(dot[j]) * (r.scale * items.scale[i]) +
                        (r.miss * items.norm[i] + r.norm * items.reach[i] + r.tail * items.tail[i]);
    if (upper >= r.floor) mask = static_cast<std::uint8_t>(mask | (1u << j));
  }
  r.masks[item / kGroup] = mask;
}

void group_dots(const std::int8_t* codes, Index pairs, const std::int16_t* q, std::int32_t* dot) {
  for (Index j = 0; j < kGroup; ++j) {
    std::int32_t sum = 0;
    for (Index p = 0; p < pairs; ++p) {
      const std::int8_t* c = codes + p * 2 * kGroup + 2 * j;
      sum += c[0] * q[2 * p] + c[1] * q[2 * p + 1];
    }
    dot[j] = sum;
  }
}

#endif

}  // namespace

#if !LOOM_SCREEN_AVX2
std::int32_t codes_dot(const std::int16_t* q, const std::int8_t* x, Index width) {
  std::int32_t dot = 0;
  for (Index j = 0; j < width; ++j) dot += static_cast<std::int32_t>(q[j]) * x[j];
  return dot;
}
#endif

void screen_upper_bounds(const ScreenItems& items, const ScreenQueries& queries, std::uint8_t* masks) {
  const Index pairs = queries.pairs, group_bytes = pairs * 2 * kGroup;
  for (Index q0 = 0; q0 < queries.count; q0 += 4) {
    const Index qn = std::min<Index>(4, queries.count - q0);
    Row rows[4];
    for (Index i = 0; i < qn; ++i) rows[i] = row_of(queries, q0 + i, masks, items.groups);
    const std::int16_t* q = queries.codes + q0 * queries.stride;
    for (Index g = 0; g < items.groups;) {
      const std::int8_t* codes = items.codes + g * group_bytes;
#if LOOM_SCREEN_AVX2
      __m256i acc[4][2] = {};
      const Index gn = qn == 4 && g + 2 <= items.groups ? 2 : 1;
      if (gn == 2) tile_4x2(codes, group_bytes, pairs, q, queries.stride, acc);
      else tile_edge(codes, pairs, q, queries.stride, qn, acc);
      for (Index h = 0; h < gn; ++h) {
        const __m256i dots[4] = {acc[0][h], acc[1][h], acc[2][h], acc[3][h]};
        finish(dots, qn, items, (g + h) * kGroup, rows);
      }
#else
      const Index gn = 1;
      for (Index i = 0; i < qn; ++i) {
        std::int32_t dot[kGroup];
        group_dots(codes, pairs, q + i * queries.stride, dot);
        finish(dot, items, g * kGroup, rows[i]);
      }
#endif
      g += gn;
    }
  }
}

}  // namespace loom::search
