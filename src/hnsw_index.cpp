// HnswIndex (loom/search/hnsw_index.hpp) on Debian's header-only hnswlib.

#include "loom/search/hnsw_index.hpp"

// hnswlib 0.6.2's hand-vectorised path prefetches through the entry one past a
// full link list (searchBaseLayer, hnswalg.h:214): a prefetch never faults, but
// the read of that entry is outside the list's allocation and AddressSanitizer
// stops on it. Sanitizer builds therefore take hnswlib's portable code, which
// has the same graph logic without the prefetches.
#if defined(__SANITIZE_ADDRESS__)
#define NO_MANUAL_VECTORIZATION
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define NO_MANUAL_VECTORIZATION
#endif
#endif
#include <hnswlib/hnswlib.h>

#include <algorithm>
#include <cmath>
#include <exception>

#include "loom/search/exact_search.hpp"

namespace loom::search {

struct HnswIndex::Graph {
  hnswlib::InnerProductSpace space;
  hnswlib::HierarchicalNSW<float> hnsw;
  Graph(const Catalog& c, const HnswOptions& o)
      : space(static_cast<std::size_t>(c.dim())),
        hnsw(&space, static_cast<std::size_t>(std::max<Index>(c.size(), 1)), static_cast<std::size_t>(o.m),
             static_cast<std::size_t>(o.ef_construction), static_cast<std::size_t>(o.seed)) {}
};

namespace {
void check_options(const HnswOptions& o) {
  if (o.m < 2 || o.m > 256) throw UsageError("HnswIndex: m must be in [2, 256], got " + std::to_string(o.m));
  if (o.ef_construction < 1)
    throw UsageError("HnswIndex: ef_construction must be at least 1, got " + std::to_string(o.ef_construction));
  if (o.ef_search < 1) throw UsageError("HnswIndex: ef_search must be at least 1, got " + std::to_string(o.ef_search));
}
}  // namespace

HnswIndex::HnswIndex(const Catalog& catalog, const HnswOptions& options)
    : catalog_(catalog), options_(options), label_counts_(count_labels(catalog)) {
  check_options(options);
  graph_ = std::make_unique<Graph>(catalog, options);
  graph_->hnsw.setEf(static_cast<std::size_t>(options.ef_search));
  const Index n = catalog.size(), d = catalog.dim();
  constexpr Index kBlock = 1024;  // items decoded at a time (int8 catalogs)
  const Index blocks = (n + kBlock - 1) / kBlock;
  // One thread: concurrent addPoint in Debian's hnswlib reads link lists
  // another thread is resizing (a heap-buffer-overflow under ASan, in
  // test_search_hnsw), and a serial build also gives the same graph every time.
  std::vector<float> scratch;
  for (Index b = 0; b < blocks; ++b) {
    const Index b0 = b * kBlock, bn = std::min(kBlock, n - b0);
    const float* rows = catalog.decode_rows(b0, bn, scratch);
    for (Index i = 0; i < bn; ++i) graph_->hnsw.addPoint(rows + i * d, static_cast<std::size_t>(b0 + i));
  }
}

HnswIndex::~HnswIndex() = default;

void HnswIndex::set_ef_search(int ef) {
  HnswOptions o = options_;
  o.ef_search = ef;
  check_options(o);
  options_ = o;
  graph_->hnsw.setEf(static_cast<std::size_t>(ef));
}

std::size_t HnswIndex::memory_bytes() const {
  const auto& h = graph_->hnsw;
  std::size_t upper = 0;
  for (std::size_t i = 0; i < h.cur_element_count; ++i)
    upper += static_cast<std::size_t>(h.element_levels_[i]) * h.size_links_per_element_;
  return h.max_elements_ * h.size_data_per_element_ + upper;
}

SearchResults HnswIndex::search(const float* queries, Index m, const SearchOptions& o) const {
  check_search_options(catalog_, o);
  check_queries(queries, m, catalog_.dim());
  // Label counts made once: a pass over every item's label cost one query more than its search.
  const std::vector<char> allowed = allowed_labels(catalog_, o, static_cast<Label>(label_counts_.size()));
  const Index admitted = admitted_items(label_counts_, allowed);  // items of the chosen classes
  const Index n = catalog_.size(), d = catalog_.dim(), want = std::min(o.k, admitted);
  // Candidates to fetch so that, filtered, about k remain (twice the expected need).
  const Index fetch = admitted == n ? o.k
                                    : std::min(n, std::max(o.k, static_cast<Index>(std::ceil(
                                                      2.0 * static_cast<double>(o.k) * static_cast<double>(n) /
                                                      static_cast<double>(std::max<Index>(admitted, 1))))));
  SearchResults results(static_cast<std::size_t>(m));
  std::vector<char> short_of_k(static_cast<std::size_t>(m), 0);  // queries the filter left short
  std::exception_ptr error;
#pragma omp parallel for schedule(dynamic, 16) if (m > 1)
  for (Index q = 0; q < m; ++q) {
    try {
      auto found = graph_->hnsw.searchKnn(queries + q * d, static_cast<std::size_t>(fetch));
      std::vector<Neighbour>& r = results[static_cast<std::size_t>(q)];
      for (; !found.empty(); found.pop()) {
        const auto row = static_cast<Index>(found.top().second);
        if (allowed[static_cast<std::size_t>(catalog_.label(row))])
          r.push_back({row, catalog_.id(row), 1.0f - found.top().first});
      }
      std::sort(r.begin(), r.end(), ranks_before);
      if (static_cast<Index>(r.size()) > o.k) r.resize(static_cast<std::size_t>(o.k));
      short_of_k[static_cast<std::size_t>(q)] = static_cast<Index>(r.size()) < want;
    } catch (...) {
#pragma omp critical(loom_hnsw_error)
      if (!error) error = std::current_exception();
    }
  }
  if (error) std::rethrow_exception(error);
  answer_short_queries_exactly(catalog_, queries, short_of_k, o, results);
  return results;
}

}  // namespace loom::search
