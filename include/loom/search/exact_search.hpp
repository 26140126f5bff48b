#pragma once
// Exact search: the k catalog items with the highest cosine similarity to
// each query, every item considered: the reference the approximate backend
// is measured against.
//
// Screen, then score. Every item first gets an upper bound of its score
// from integer products of short codes (screening_codes.hpp: the head of a
// rotation that keeps dot products, in 8 and 16 bits, plus a bound on the
// rest). An item whose upper bound is below the k-th best exact score found
// so far cannot be in the top k and is passed over; the others are bounded
// again from all their codes, and those still in reach are scored exactly,
// in double precision from the catalog's own vectors, and offered to the
// query's top k. The screen reads a few bytes per item (about 40 for the seed
// model's 128-value embeddings, against 512 of float32 vectors).
// The codes decide only which items are scored, never a score or the order,
// so the result is that of scoring every item.
//
// Work is cut into tasks spread over OpenMP threads: a batch of queries
// splits into blocks of 64 queries, each scanning the whole catalog; a single
// block (one query, a few) splits the catalog into shards of 8,192 items.
// Inside a task the codes are read in blocks that stay in L1 while every
// query of the block passes over them. Each task keeps its own top k per
// query; they are merged at the end. How the work is split changes only
// which items get scored, and every item that can be in the top k is: the
// order (score, then id) is total, so the result depends neither on the
// thread count nor on the scheduling.
//
// Thread safety: search is const. The codes are made when the ExactSearch
// is: the catalog must not change while an ExactSearch on it exists (a
// changed size is caught and is a UsageError; make a new one).

#include <algorithm>
#include <bit>
#include <cstdint>
#include <exception>
#include <limits>
#include <vector>

#include "loom/search/screening_codes.hpp"
#include "loom/search/vector_index.hpp"

namespace loom::search {

class ExactSearch final : public VectorIndex {
 public:
  /// Keeps a reference: the catalog must outlive the search, unchanged.
  /// DataError when an item has a value that is not finite.
  explicit ExactSearch(const Catalog& catalog) : catalog_(catalog), codes_(catalog) {}
  const Catalog& catalog() const override { return catalog_; }

  static constexpr Index kQueryBlock = 64;
  static constexpr Index kShardGroups = 1024;  // 8,192 items

  /// Bytes of the screening codes, besides the catalog.
  std::size_t memory_bytes() const { return codes_.memory_bytes(); }
  /// How many rotated values the codes keep (of the catalog's dim).
  Index screened_values() const { return codes_.rotation().head; }

  using VectorIndex::search;
  /// UsageError when a query has a value that is not finite.
  SearchResults search(const float* queries, Index m, const SearchOptions& o) const override {
    check_search_options(catalog_, o);
    if (catalog_.size() != codes_.items())
      throw UsageError("search: the catalog changed (" + std::to_string(codes_.items()) + " items, now " +
                       std::to_string(catalog_.size()) + ") after its ExactSearch was made; make a new one");
    const std::vector<char> allowed = allowed_labels(catalog_, o);
    const QueryCodes coded(queries, m, codes_.rotation());
    const Index groups = codes_.groups();
    // One block of queries splits the catalog into shards, for the threads;
    // more blocks each scan the whole catalog, so that a query's floor rises
    // once, not once per shard (every shard's first items all get scored).
    const Index qblocks = (m + kQueryBlock - 1) / kQueryBlock;
    const Index shard_groups = qblocks > 1 ? std::max<Index>(groups, 1) : kShardGroups;
    const Index shards = (groups + shard_groups - 1) / shard_groups;
    const Index tasks = qblocks * shards;
    // Groups per scan block: 32 KB of codes.
    const Index scan_groups = std::max<Index>(1, 32768 / (codes_.pairs() * 2 * ScreeningCodes::kGroup));
    std::vector<std::vector<Top>> partial(static_cast<std::size_t>(tasks));  // [task][query in block]
    std::exception_ptr error;
#pragma omp parallel if (tasks > 1)
    {
      std::vector<float> upper, floors;  // (queries in block, items in scan block); (queries in block)
      std::vector<std::uint8_t> masks;   // (queries in block, groups in scan block)
      std::vector<float> decoded;        // a survivor's row of an int8 catalog, as floats
#pragma omp for schedule(dynamic)
      for (Index t = 0; t < tasks; ++t) {
        try {
          const Index qb = t / shards, shard = t % shards;
          const Index q0 = qb * kQueryBlock, qn = std::min(kQueryBlock, m - q0);
          const Index g0 = shard * shard_groups, g1 = std::min(groups, g0 + shard_groups);
          auto& tops = partial[static_cast<std::size_t>(t)];
          tops.assign(static_cast<std::size_t>(qn), Top{});
          const Index stride = scan_groups * ScreeningCodes::kGroup;
          upper.resize(static_cast<std::size_t>(qn * stride));
          masks.resize(static_cast<std::size_t>(qn * scan_groups));
          floors.resize(static_cast<std::size_t>(qn));
          for (Index b = g0; b < g1; b += scan_groups) {
            const Index bn = std::min(scan_groups, g1 - b);
            for (Index i = 0; i < qn; ++i) floors[static_cast<std::size_t>(i)] = tops[static_cast<std::size_t>(i)].floor;
            screen_upper_bounds(codes_.run(b, bn), coded.run(q0, qn, floors.data()), upper.data(), stride, masks.data());
            for (Index i = 0; i < qn; ++i)
              score_survivors(tops[static_cast<std::size_t>(i)], upper.data() + i * stride, masks.data() + i * bn, b, bn,
                              coded, q0 + i, queries + (q0 + i) * catalog_.dim(), o.k, allowed, decoded);
          }
        } catch (...) {
#pragma omp critical(loom_exact_search_error)
          if (!error) error = std::current_exception();
        }
      }
    }
    if (error) std::rethrow_exception(error);
    SearchResults results(static_cast<std::size_t>(m));
    for (Index i = 0; i < m; ++i) {
      std::vector<Neighbour>& r = results[static_cast<std::size_t>(i)];
      const Index qb = i / kQueryBlock, in_block = i % kQueryBlock;
      for (Index shard = 0; shard < shards; ++shard) {
        const Top& top = partial[static_cast<std::size_t>(qb * shards + shard)][static_cast<std::size_t>(in_block)];
        r.insert(r.end(), top.kept.begin(), top.kept.end());
      }
      const auto keep = std::min<std::size_t>(r.size(), static_cast<std::size_t>(o.k));
      std::partial_sort(r.begin(), r.begin() + static_cast<std::ptrdiff_t>(keep), r.end(), ranks_before);
      r.resize(keep);
    }
    return results;
  }

 private:
  // One query's k best within one task: a heap whose front ranks last.
  struct Top {
    std::vector<Neighbour> kept;
    float floor = -std::numeric_limits<float>::infinity();  // the k-th best score, once k are kept
  };

  // Scores exactly, and offers to top, the items of groups [g0, g0 + groups)
  // whose upper bounds reached top's floor (the bits of masks) and still do
  // when bounded from all their codes.
  void score_survivors(Top& top, const float* upper, const std::uint8_t* masks, Index g0, Index groups,
                       const QueryCodes& coded, Index q, const float* query, Index k, const std::vector<char>& allowed,
                       std::vector<float>& scratch) const {
    const Index first = g0 * ScreeningCodes::kGroup;
    const auto cap = static_cast<std::size_t>(k);
    for (Index g = 0; g < groups; ++g)
      for (unsigned bits = masks[g]; bits != 0; bits &= bits - 1) {
        const Index j = g * ScreeningCodes::kGroup + std::countr_zero(bits), row = first + j;
        // The floor may have risen since the bounds were compared; rows past the last are padding.
        if (upper[j] < top.floor || row >= catalog_.size()) continue;
        if (!allowed[static_cast<std::size_t>(catalog_.label(row))]) continue;
        if (codes_.refine(row, coded, q) < top.floor) continue;
        const Neighbour n{row, catalog_.id(row), exact_score(query, catalog_.decode_rows(row, 1, scratch))};
        if (top.kept.size() < cap) {
          top.kept.push_back(n);
          std::push_heap(top.kept.begin(), top.kept.end(), ranks_before);
        } else if (ranks_before(n, top.kept.front())) {
          std::pop_heap(top.kept.begin(), top.kept.end(), ranks_before);
          top.kept.back() = n;
          std::push_heap(top.kept.begin(), top.kept.end(), ranks_before);
        }
        if (top.kept.size() == cap) top.floor = top.kept.front().score;
      }
  }

  // q.x in double precision, in a fixed order (four running sums), rounded to float.
  float exact_score(const float* q, const float* x) const {
    const Index d = catalog_.dim();
    double s[4] = {0.0, 0.0, 0.0, 0.0};
    Index j = 0;
    for (; j + 4 <= d; j += 4)
      for (Index l = 0; l < 4; ++l) s[l] += static_cast<double>(q[j + l]) * x[j + l];
    for (; j < d; ++j) s[0] += static_cast<double>(q[j]) * x[j];
    return static_cast<float>((s[0] + s[1]) + (s[2] + s[3]));
  }

  const Catalog& catalog_;
  ScreeningCodes codes_;
};

}  // namespace loom::search
