#pragma once
// Exact search: every query scored against every catalog item with Eigen
// matrix products, the reference the approximate backend is measured against.
//
// Work is cut into fixed tasks, (a block of 64 queries) x (a shard of 8,192
// items), spread over OpenMP threads: a batch of queries splits by queries,
// one query splits by shards. Inside a task the shard is read in blocks of
// 1,024 items (512 KB of float32 vectors at dim 128, an int8 block decoded
// into that much), each scored against the query block by one product that
// stays in cache, and every score is offered to the query's top-k. Each task
// keeps its own top-k lists; they are merged per query at the end. The
// order (score, then id) is total, so the result does not depend on the
// thread count or the scheduling.
//
// Thread safety: search is const; the catalog must not change while it runs.

#include <algorithm>
#include <exception>
#include <vector>

#include "loom/search/vector_index.hpp"

namespace loom::search {

class ExactSearch final : public VectorIndex {
 public:
  /// Keeps a reference: the catalog must outlive the search.
  explicit ExactSearch(const Catalog& catalog) : catalog_(catalog) {}
  const Catalog& catalog() const override { return catalog_; }

  static constexpr Index kQueryBlock = 64;
  static constexpr Index kShardRows = 8192;
  static constexpr Index kScanRows = 1024;

  using VectorIndex::search;
  SearchResults search(const float* queries, Index m, const SearchOptions& o) const override {
    check_search_options(catalog_, o);
    const std::vector<char> allowed = allowed_labels(catalog_, o);
    const Index n = catalog_.size(), d = catalog_.dim();
    const Index qblocks = (m + kQueryBlock - 1) / kQueryBlock, shards = (n + kShardRows - 1) / kShardRows;
    const Index tasks = qblocks * shards;
    // partial[task][query in block]: that shard's top-k of that query.
    std::vector<std::vector<std::vector<Neighbour>>> partial(static_cast<std::size_t>(tasks));
    std::exception_ptr error;
#pragma omp parallel if (tasks > 1)
    {
      RowMatrix scores;            // (queries in block, kScanRows)
      std::vector<float> decoded;  // an int8 block as floats
#pragma omp for schedule(dynamic)
      for (Index t = 0; t < tasks; ++t) {
        try {
          const Index qb = t / shards, shard = t % shards;
          const Index q0 = qb * kQueryBlock, qn = std::min(kQueryBlock, m - q0);
          const Index s0 = shard * kShardRows, s1 = std::min(n, s0 + kShardRows);
          auto& tops = partial[static_cast<std::size_t>(t)];
          tops.assign(static_cast<std::size_t>(qn), {});
          const ConstMatrixMap q(queries + q0 * d, qn, d);
          for (Index b0 = s0; b0 < s1; b0 += kScanRows) {
            const Index bn = std::min(kScanRows, s1 - b0);
            const ConstMatrixMap x(catalog_.decode_rows(b0, bn, decoded), bn, d);
            scores.resize(qn, bn);
            scores.noalias() = q * x.transpose();
            for (Index i = 0; i < qn; ++i) offer(tops[static_cast<std::size_t>(i)], scores.row(i).data(), b0, bn, o.k, allowed);
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
        const auto& top = partial[static_cast<std::size_t>(qb * shards + shard)][static_cast<std::size_t>(in_block)];
        r.insert(r.end(), top.begin(), top.end());
      }
      const auto keep = std::min<std::size_t>(r.size(), static_cast<std::size_t>(o.k));
      std::partial_sort(r.begin(), r.begin() + static_cast<std::ptrdiff_t>(keep), r.end(), ranks_before);
      r.resize(keep);
    }
    return results;
  }

 private:
  // Offers items [b0, b0 + bn) with these scores to top, a heap of at most k
  // whose front is the worst kept (ranks_before as the heap's order).
  void offer(std::vector<Neighbour>& top, const float* score, Index b0, Index bn, Index k,
             const std::vector<char>& allowed) const {
    const auto cap = static_cast<std::size_t>(k);
    for (Index j = 0; j < bn; ++j) {
      if (top.size() == cap && score[j] < top.front().score) continue;  // the common case, decided by score alone
      const Index row = b0 + j;
      if (!allowed[static_cast<std::size_t>(catalog_.label(row))]) continue;
      const Neighbour candidate{row, catalog_.id(row), score[j]};
      if (top.size() < cap) {
        top.push_back(candidate);
        std::push_heap(top.begin(), top.end(), ranks_before);
      } else if (ranks_before(candidate, top.front())) {
        std::pop_heap(top.begin(), top.end(), ranks_before);
        top.back() = candidate;
        std::push_heap(top.begin(), top.end(), ranks_before);
      }
    }
  }

  const Catalog& catalog_;
};

}  // namespace loom::search
