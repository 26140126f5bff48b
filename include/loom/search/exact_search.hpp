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
// query's top k. Before the scan, each query scores a few items of its
// nearest cluster (floor_seeds.hpp): their k-th best score is its first
// floor, so the scan does not start from -infinity and score nearly every
// early item. The screen reads a few bytes per item (about 40 for the seed
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
#include <cstring>
#include <exception>
#include <functional>
#include <span>
#include <limits>
#include <vector>

#include "loom/search/exact_score.hpp"
#include "loom/search/floor_seeds.hpp"
#include "loom/search/screening_codes.hpp"
#include "loom/search/vector_index.hpp"

namespace loom::search {

class ExactSearch final : public VectorIndex {
 public:
  /// Keeps a reference: the catalog must outlive the search, unchanged.
  explicit ExactSearch(const Catalog& catalog) : catalog_(catalog), codes_(catalog), seeds_(catalog) {}
  const Catalog& catalog() const override { return catalog_; }

  static constexpr Index kQueryBlock = 64;
  static constexpr Index kShardGroups = 1024;  // 8,192 items

  /// Bytes of the screening codes, besides the catalog.
  std::size_t memory_bytes() const { return codes_.memory_bytes() + seeds_.memory_bytes(); }
  /// How many rotated values the codes keep (of the catalog's dim).
  Index screened_values() const { return codes_.rotation().head; }

  using VectorIndex::search;
  /// UsageError when a query is not of unit length (or all zero; unit_vectors.hpp).
  SearchResults search(const float* queries, Index m, const SearchOptions& o) const override {
    check_search_options(catalog_, o);
    check_queries(queries, m, catalog_.dim());
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
    std::vector<float> seeded(static_cast<std::size_t>(m));                // each query's first floor
    std::exception_ptr error;
#pragma omp parallel if (tasks > 1)
    {
      std::vector<float> floors;         // (queries in block)
      std::vector<std::uint8_t> masks;   // (queries in block, groups in scan block)
      std::vector<float> decoded;        // a survivor's row of an int8 catalog, as floats
      std::vector<Candidate> candidates;
#pragma omp for schedule(static)
      for (Index i = 0; i < m; ++i) {
        try {
          seeded[static_cast<std::size_t>(i)] = seeded_floor(queries + i * catalog_.dim(), o.k, allowed, decoded);
        } catch (...) {
#pragma omp critical(loom_exact_search_error)
          if (!error) error = std::current_exception();
        }
      }
#pragma omp for schedule(dynamic)
      for (Index t = 0; t < tasks; ++t) {
        try {
          const Index qb = t / shards, shard = t % shards;
          const Index q0 = qb * kQueryBlock, qn = std::min(kQueryBlock, m - q0);
          const Index g0 = shard * shard_groups, g1 = std::min(groups, g0 + shard_groups);
          auto& tops = partial[static_cast<std::size_t>(t)];
          tops.resize(static_cast<std::size_t>(qn));
          for (Index i = 0; i < qn; ++i) tops[static_cast<std::size_t>(i)].floor = seeded[static_cast<std::size_t>(q0 + i)];
          masks.resize(static_cast<std::size_t>(qn * scan_groups));
          floors.resize(static_cast<std::size_t>(qn));
          for (Index b = g0; b < g1; b += scan_groups) {
            const Index bn = std::min(scan_groups, g1 - b);
            for (Index i = 0; i < qn; ++i) floors[static_cast<std::size_t>(i)] = tops[static_cast<std::size_t>(i)].floor;
            screen_upper_bounds(codes_.run(b, bn), coded.run(q0, qn, floors.data()), masks.data());
            score_survivors(tops, masks.data(), b, bn, coded, q0, queries, o.k, allowed, candidates,
                            decoded);
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
    // No item of the top k scores below it: the k-th best score of the
    // floor seeds at first, then of the kept items once k are kept.
    float floor = -std::numeric_limits<float>::infinity();
  };

  // The k-th best exact score among the query's floor seeds of the allowed
  // classes (-infinity when fewer than k): k items score at least that, so
  // no item of the top k scores less.
  float seeded_floor(const float* query, Index k, const std::vector<char>& allowed, std::vector<float>& scratch) const {
    std::vector<float> scores;
    const std::span<const Index> rows = seeds_.rows_for(query);
    if (catalog_.encoding() == VectorEncoding::Float32)  // their rows are cache misses: ask for all of them at once
      for (const Index row : rows) prefetch_row(catalog_.decode_rows(row, 1, scratch));
    for (const Index row : rows)
      if (allowed[static_cast<std::size_t>(catalog_.label(row))])
        scores.push_back(exact_score(query, catalog_.decode_rows(row, 1, scratch)));
    if (scores.size() < static_cast<std::size_t>(k)) return -std::numeric_limits<float>::infinity();
    std::nth_element(scores.begin(), scores.begin() + (k - 1), scores.end(), std::greater<>());
    return scores[static_cast<std::size_t>(k - 1)];
  }

  void prefetch_row(const float* row) const {
    const Index d = catalog_.dim();
    for (Index j = 0; j < d; j += 16) __builtin_prefetch(row + j);
  }

  // An item of a scan block that passed the screen for query (of the
  // block), and its bound from all its codes.
  struct Candidate {
    Index query, row;
    float bound;
  };

  // Scores exactly, and offers to the tops of the block's queries (from
  // q0), the items of groups [g0, g0 + groups) whose upper bounds reached the
  // query's floor (the bits of masks, as the kernel left them) and still do
  // when bounded from all their codes. In three passes over the whole block,
  // each asking for the rows the next one reads (codes, then the catalog's
  // vectors), so that their cache misses overlap instead of queueing.
  void score_survivors(std::vector<Top>& tops, const std::uint8_t* masks, Index g0,
                       Index groups, const QueryCodes& coded, Index q0, const float* queries, Index k,
                       const std::vector<char>& allowed, std::vector<Candidate>& candidates,
                       std::vector<float>& scratch) const {
    const Index first = g0 * ScreeningCodes::kGroup, d = catalog_.dim();
    const bool floats = catalog_.encoding() == VectorEncoding::Float32;
    candidates.clear();
    for (Index i = 0; i < static_cast<Index>(tops.size()); ++i) {
      // The masks of 8 groups as one word, bit b for item b of them: nearly all words are 0.
      static_assert(std::endian::native == std::endian::little && ScreeningCodes::kGroup == 8);
      const std::uint8_t* mask = masks + i * groups;
      for (Index g = 0; g < groups; g += 8) {
        std::uint64_t bits = 0;
        std::memcpy(&bits, mask + g, static_cast<std::size_t>(std::min<Index>(8, groups - g)));
        for (; bits != 0; bits &= bits - 1) {
          const Index j = g * ScreeningCodes::kGroup + std::countr_zero(bits), row = first + j;
          // Rows past the last are padding.
          if (row >= catalog_.size() || !allowed[static_cast<std::size_t>(catalog_.label(row))]) continue;
          codes_.prefetch_row(row);
          candidates.push_back({i, row, 0.0f});
        }
      }
    }
    std::size_t kept = 0;
    for (Candidate c : candidates) {
      c.bound = codes_.refine(c.row, coded, q0 + c.query);
      if (c.bound < tops[static_cast<std::size_t>(c.query)].floor) continue;
      if (floats) prefetch_row(catalog_.decode_rows(c.row, 1, scratch));
      candidates[kept++] = c;
    }
    for (std::size_t i = 0; i < kept; ++i) {
      const Candidate c = candidates[i];
      Top& top = tops[static_cast<std::size_t>(c.query)];
      if (c.bound < top.floor) continue;  // the floor has risen since
      const float* query = queries + (q0 + c.query) * d;
      offer(top, {c.row, catalog_.id(c.row), exact_score(query, catalog_.decode_rows(c.row, 1, scratch))}, k);
    }
  }

  // n into top, if it ranks before top's k-th; the floor rises with it.
  static void offer(Top& top, const Neighbour& n, Index k) {
    if (n.score < top.floor) return;  // a seeded floor: kept items must not fall below it
    const auto cap = static_cast<std::size_t>(k);
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

  float exact_score(const float* q, const float* x) const { return search::exact_score(q, x, catalog_.dim()); }

  const Catalog& catalog_;
  ScreeningCodes codes_;
  FloorSeeds seeds_;
};

/// For an approximate backend: the queries whose class filter left fewer
/// than k results (short[q] != 0) are answered by exact search instead, so
/// k come back whenever the chosen classes hold k. Queries: (m, dim).
inline void answer_short_queries_exactly(const Catalog& c, const float* queries, const std::vector<char>& short_of_k,
                                         const SearchOptions& o, SearchResults& results) {
  if (std::find(short_of_k.begin(), short_of_k.end(), 1) == short_of_k.end()) return;
  const ExactSearch exact(c);
  for (std::size_t q = 0; q < short_of_k.size(); ++q)
    if (short_of_k[q]) results[q] = exact.search(queries + static_cast<Index>(q) * c.dim(), 1, o)[0];
}

}  // namespace loom::search
