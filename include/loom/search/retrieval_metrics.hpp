#pragma once
// How good a search is, with the class labels as ground truth: a neighbour is
// relevant when it has the query's class.
//   precision@k  relevant neighbours among the first k, over k
//   AP@k         (1 / min(k, R)) * sum over i <= k of precision@i * rel_i,
//                R = the catalog's items of the query's class
//   mAP@k        AP@k averaged over the queries
// and how close an approximate search comes to the exact one:
//   recall@k     the share of the exact top k that the approximate top k found.
//
// Thread safety: pure functions.

#include <algorithm>
#include <span>
#include <unordered_set>
#include <vector>

#include "loom/search/vector_index.hpp"

namespace loom::search {

struct RetrievalScores {
  Index queries = 0;
  Index k = 0;
  double precision_at_1 = 0.0;
  double precision_at_k = 0.0;
  double map_at_k = 0.0;
};

/// Scores results[i], the neighbours of a query of class query_labels[i], against catalog's labels.
inline RetrievalScores score_retrieval(std::span<const Label> query_labels, const SearchResults& results,
                                       const Catalog& catalog, Index k) {
  if (query_labels.size() != results.size())
    throw ShapeError("score_retrieval: " + std::to_string(query_labels.size()) + " query labels but " +
                     std::to_string(results.size()) + " results");
  if (k < 1) throw UsageError("score_retrieval: k must be at least 1, got " + std::to_string(k));
  std::vector<Index> per_class;
  for (const Label l : catalog.labels()) {
    if (static_cast<std::size_t>(l) >= per_class.size()) per_class.resize(static_cast<std::size_t>(l) + 1, 0);
    ++per_class[static_cast<std::size_t>(l)];
  }
  RetrievalScores s{.queries = static_cast<Index>(results.size()), .k = k};
  for (std::size_t q = 0; q < results.size(); ++q) {
    const Label truth = query_labels[q];
    const Index relevant_total = static_cast<std::size_t>(truth) < per_class.size() ? per_class[static_cast<std::size_t>(truth)] : 0;
    const auto& r = results[q];
    Index hits = 0;
    double ap = 0.0;
    for (std::size_t i = 0; i < r.size() && static_cast<Index>(i) < k; ++i) {
      if (catalog.label(r[i].row) != truth) continue;
      ++hits;
      ap += static_cast<double>(hits) / static_cast<double>(i + 1);
      if (i == 0) s.precision_at_1 += 1.0;
    }
    s.precision_at_k += static_cast<double>(hits) / static_cast<double>(k);
    if (relevant_total > 0) s.map_at_k += ap / static_cast<double>(std::min(k, relevant_total));
  }
  const double n = std::max<double>(1.0, static_cast<double>(results.size()));
  s.precision_at_1 /= n;
  s.precision_at_k /= n;
  s.map_at_k /= n;
  return s;
}

/// Mean over queries of |approximate top k  ∩  exact top k| / k (items compared by row).
inline double recall_at_k(const SearchResults& approximate, const SearchResults& exact, Index k) {
  if (approximate.size() != exact.size())
    throw ShapeError("recall_at_k: " + std::to_string(approximate.size()) + " approximate results but " +
                     std::to_string(exact.size()) + " exact ones");
  double sum = 0.0;
  for (std::size_t q = 0; q < exact.size(); ++q) {
    std::unordered_set<Index> truth;
    for (std::size_t i = 0; i < exact[q].size() && static_cast<Index>(i) < k; ++i) truth.insert(exact[q][i].row);
    Index found = 0;
    for (std::size_t i = 0; i < approximate[q].size() && static_cast<Index>(i) < k; ++i) found += truth.contains(approximate[q][i].row);
    sum += truth.empty() ? 1.0 : static_cast<double>(found) / static_cast<double>(truth.size());
  }
  return exact.empty() ? 1.0 : sum / static_cast<double>(exact.size());
}

}  // namespace loom::search
