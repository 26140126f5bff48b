#pragma once
// Screening codes: what exact search (exact_search.hpp) reads to rule items
// out cheaply, before it scores the few that remain exactly.
//
// 1. A rotation. The vectors are turned by the eigenvectors of their second
//    moment matrix (a principal component rotation, without centring: it
//    keeps dot products, q.x = Rq.Rx). Embeddings hold most of their energy
//    in few directions (the seed model's 128 values: 97% in the first 40),
//    so the first `head` rotated values carry most of every score and the
//    rest is bounded by |q_tail| |x_tail| (Cauchy-Schwarz).
// 2. Codes. Each item's rotated vector as 8-bit codes (one scale: max /
//    127), each query's as 16-bit codes, as many bits as a 32-bit sum can
//    hold. Integer products of codes approximate scores.
// 3. Two bounds. With q~ and x~ the coded vectors,
//      q.x = q~.x~ + (q - q~).x~ + q.(x - x~)
//    bounds |q.x - q~.x~| by q.miss * |x~| + |q| * x.miss. Screening reads
//    only the head's codes (the first `head` values) and bounds the rest by
//    Cauchy-Schwarz, |q_tail| |x_tail|:
//      upper = head codes' dot * q.scale * x.scale
//              + q.head_miss * x.head_norm + |q| * x.head_reach + q.tail * x.tail;
//    an item that passes is bounded again from all its codes (refine),
//      upper = codes' dot * q.scale * x.scale + q.miss * x.norm + |q| * x.reach,
//    a bound within a few hundredths, before it is scored exactly. A reach
//    is the codes' miss plus a generous allowance for float rounding (in the
//    rotation, the codes' dot and the exact score), (4 dim + 16) float
//    epsilons relative to |q| |x|; everything else is proved.
//
// Layout of the head's codes: items in groups of 8. A group holds, for each
// pair of head values (2p, 2p + 1), the 8 items' two codes side by side (16
// bytes), so that one 16-byte load widened to 16 bits is 8 items x 2 values:
// the operand of _mm256_madd_epi16 against a query's pair broadcast to every
// lane. All codes are also kept row by row, for refine. Vectors are padded to
// an even count of values and the items to whole groups, with zeros.
//
// Thread safety: values; const members are safe from many threads.

#include <cstdint>
#include <vector>

#include "loom/search/catalog.hpp"

namespace loom::search {

// The screening kernel's operands: a run of groups of item codes with their
// per-item terms, and a few coded queries with theirs.
struct ScreenItems {
  const std::int8_t* codes;  // `groups` whole groups
  const float* scale;        // per item: the codes' scale,
  const float* norm;         // the coded head's norm,
  const float* reach;        // the head's reach (what its codes miss, plus rounding),
  const float* tail;         // and the tail's norm
  Index groups;
};
struct ScreenQueries {
  const std::int16_t* codes;  // count rows of `stride` codes; the head is the first 2 * pairs of a row
  const float* scale;         // per query: the codes' scale,
  const float* miss;          // what the head's codes miss of the head,
  const float* norm;          // the query's norm,
  const float* tail;          // its tail's norm,
  const float* floor;         // and the bound an item must reach to be kept
  Index count, pairs, stride;
};

/// For query q and item i of the run, the upper bound of their exact score
/// (see above), and into masks[q * groups + g] a
/// bit per item of group g whose upper bound reaches q.floor (bit j: item
/// 8g + j). In src/screening_kernel.cpp.
void screen_upper_bounds(const ScreenItems& items, const ScreenQueries& queries, std::uint8_t* masks);

/// sum_j q[j] * x[j] over width values: refine's dot. In src/screening_kernel.cpp.
std::int32_t codes_dot(const std::int16_t* q, const std::int8_t* x, Index width);

/// The rotation and the head's length, chosen from a catalog's vectors.
struct Rotation {
  Index dim = 0, head = 0;    // head: even, at most dim rounded up to even
  std::vector<float> matrix;  // (dim, dim) row-major: rotated = vector * matrix (columns: directions, strongest
                              // first); empty: the identity (above 512 values, head = all of them)

  /// From (a sample of) c's vectors: the head is the fewest values that hold
  /// 97% of the energy. Vectors of more than 512 values are not rotated. In src/screening_codes.cpp.
  static Rotation of(const Catalog& c);
  /// rows (n, dim) rotated into out (n, dim).
  void apply(const float* rows, Index n, float* out) const;
};

class QueryCodes;

class ScreeningCodes {
 public:
  static constexpr Index kGroup = 8;  // items per group

  ScreeningCodes() = default;
  /// Codes for every item of c (whose vectors the catalog keeps of unit
  /// length). In src/screening_codes.cpp.
  explicit ScreeningCodes(const Catalog& c);

  const Rotation& rotation() const { return rotation_; }
  Index items() const { return items_; }
  Index pairs() const { return rotation_.head / 2; }
  Index groups() const { return groups_; }
  /// The kernel's view of groups [g, g + count).
  ScreenItems run(Index g, Index count) const {
    const auto i = static_cast<std::size_t>(g * kGroup);
    return {head_codes_.data() + g * pairs() * 2 * kGroup, scale_.data() + i, head_norm_.data() + i,
            head_reach_.data() + i, tail_.data() + i, count};
  }
  /// The second, tighter upper bound of item's score against query q, from all its codes.
  float refine(Index item, const QueryCodes& queries, Index q) const;
  /// Asks for item's row of codes, which refine reads, to be brought into cache.
  void prefetch_row(Index item) const {
    for (Index j = 0; j < width_; j += 64) __builtin_prefetch(rows_.data() + item * width_ + j);
  }

  std::size_t memory_bytes() const {
    return head_codes_.size() + rows_.size() + (scale_.size() * 6 + rotation_.matrix.size()) * sizeof(float);
  }

 private:
  Rotation rotation_;
  Index items_ = 0, width_ = 0, groups_ = 0;          // width_: values per row of codes (dim rounded up to even)
  std::vector<std::int8_t> head_codes_;               // groups_ x pairs() x (8 items x 2 values)
  std::vector<std::int8_t> rows_;                     // items_ x width_: all codes, row by row
  std::vector<float> scale_, head_norm_, head_reach_, tail_, norm_, reach_;  // per item, padded to whole groups
};

/// Queries rotated and coded as the screening kernel and refine read them.
/// The queries must be of unit length (check_queries, vector_index.hpp). In src/screening_codes.cpp.
class QueryCodes {
 public:
  QueryCodes(const float* queries, Index m, const Rotation& rotation);

  /// The kernel's view of queries [q, q + count), which must reach floor[0 .. count).
  ScreenQueries run(Index q, Index count, const float* floor) const {
    const auto at = static_cast<std::size_t>(q);
    return {codes(q), scale_.data() + at, head_miss_.data() + at, norm_.data() + at, tail_.data() + at, floor, count,
            head_ / 2, width_};
  }
  const std::int16_t* codes(Index q) const { return codes_.data() + q * width_; }
  float scale(Index q) const { return scale_[static_cast<std::size_t>(q)]; }
  float miss(Index q) const { return miss_[static_cast<std::size_t>(q)]; }
  float norm(Index q) const { return norm_[static_cast<std::size_t>(q)]; }

 private:
  Index head_ = 0, width_ = 0;
  std::vector<std::int16_t> codes_;  // m x width_
  std::vector<float> scale_, head_miss_, miss_, norm_, tail_;
};

}  // namespace loom::search
