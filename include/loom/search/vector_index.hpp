#pragma once
// What every search backend answers: for each query vector, the k catalog
// items most similar to it by cosine similarity (the dot product of unit
// vectors), optionally only among some classes ("only shoes"). ExactSearch
// (exact_search.hpp) is the reference; IvfIndex (ivf_index.hpp) and
// HnswIndex (hnsw_index.hpp) the approximate backends for large catalogs,
// measured against it.
//
// Order: highest score first; equal scores by id, smallest first, so results
// are deterministic. With a class filter, k results come back whenever the
// chosen classes hold k items (fewer only when they hold fewer).
//
// Thread safety: search is const and safe from many threads at once.

#include <cstdint>
#include <string>
#include <vector>

#include "loom/search/catalog.hpp"

namespace loom::search {

struct Neighbour {
  Index row = 0;          // position in the catalog
  std::int64_t id = 0;    // the item's id
  float score = 0.0f;     // cosine similarity, in [-1, 1]
  bool operator==(const Neighbour&) const = default;
};

/// The order of results: higher score first, then smaller id.
inline bool ranks_before(const Neighbour& a, const Neighbour& b) {
  return a.score > b.score || (a.score == b.score && a.id < b.id);
}

struct SearchOptions {
  Index k = 10;                // neighbours per query
  std::vector<Label> classes;  // only items of these labels; empty: every item
};

/// Neighbours of each query, in query order.
using SearchResults = std::vector<std::vector<Neighbour>>;

class VectorIndex {
 public:
  virtual ~VectorIndex() = default;
  virtual const Catalog& catalog() const = 0;
  /// queries: (m, dim) row-major, unit rows (as embed gives them).
  virtual SearchResults search(const float* queries, Index m, const SearchOptions& options) const = 0;
  /// (m, 1, 1, dim) embeddings.
  SearchResults search(const Tensor& queries, const SearchOptions& options) const {
    if (queries.size() != queries.dimension(0) * catalog().dim())
      throw ShapeError("search: queries of dimensions " + dims_string(queries) + " do not hold vectors of the catalog's " +
                       std::to_string(catalog().dim()) + " values");
    return search(queries.data(), queries.dimension(0), options);
  }
};

/// Checks options against a catalog: UsageError when k is below 1 or above
/// the catalog's size, or a class is not one of its labels.
inline void check_search_options(const Catalog& c, const SearchOptions& o) {
  if (o.k < 1) throw UsageError("search: k must be at least 1, got " + std::to_string(o.k));
  if (o.k > c.size())
    throw UsageError("search: k = " + std::to_string(o.k) + " is more than the catalog's " + std::to_string(c.size()) +
                     " items");
  const std::size_t classes = c.info().class_names.size();
  for (const Label l : o.classes)
    if (!valid_label(l, classes))
      throw UsageError("search: class label " + std::to_string(l) + " is not one of the catalog's labels (" +
                       label_range(classes) + ")");
}

/// UsageError naming the query when one of the (m, dim) queries is not of
/// unit length (or all zero) or has a value that is not finite.
inline void check_queries(const float* queries, Index m, Index dim) {
  if (const auto [q, problem] = first_non_unit_row(queries, m, dim); q >= 0)
    throw UsageError("search: query " + std::to_string(q) + " " + problem);
}

/// allowed[label] != 0 for the labels options.classes admits (all when empty); sized past every label in c,
/// all of which are below labels_below (an index that knows it saves a pass over every item per search).
inline std::vector<char> allowed_labels(const Catalog& c, const SearchOptions& o, Label labels_below) {
  Label top = std::max(labels_below, static_cast<Label>(c.info().class_names.size()));
  for (const Label l : o.classes) top = std::max(top, l + 1);
  std::vector<char> allowed(static_cast<std::size_t>(top), o.classes.empty() ? 1 : 0);
  for (const Label l : o.classes) allowed[static_cast<std::size_t>(l)] = 1;
  return allowed;
}

inline std::vector<char> allowed_labels(const Catalog& c, const SearchOptions& o) {
  Label top = 0;
  for (const Label l : c.labels()) top = std::max(top, l + 1);
  return allowed_labels(c, o, top);
}

/// Items of c per label (index: the label), for an index to count once what
/// every filtered search needs: how many items the classes hold.
inline std::vector<Index> count_labels(const Catalog& c) {
  std::vector<Index> counts;
  for (const Label l : c.labels()) {
    if (static_cast<std::size_t>(l) >= counts.size()) counts.resize(static_cast<std::size_t>(l) + 1);
    ++counts[static_cast<std::size_t>(l)];
  }
  return counts;
}

/// Items whose label `allowed` admits, from count_labels; allowed is sized past every label.
inline Index admitted_items(const std::vector<Index>& counts, const std::vector<char>& allowed) {
  Index admitted = 0;
  for (std::size_t l = 0; l < counts.size(); ++l) admitted += allowed[l] ? counts[l] : 0;
  return admitted;
}

}  // namespace loom::search
