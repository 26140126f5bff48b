// The approximate backend against the exact one on a small synthetic set:
// recall@10, the class filter, scores, and option errors.

#include <catch2/catch.hpp>

#include "loom/search/exact_search.hpp"
#include "loom/search/hnsw_index.hpp"
#include "loom/search/retrieval_metrics.hpp"
#include "search_fixtures.hpp"

using namespace loom;
using namespace loom::search;
using namespace loom::testing;
using Catch::Contains;

TEST_CASE("HNSW: recall@10 against exact search on a synthetic set", "[search][hnsw]") {
  // Few dimensions of variation, as in real embeddings (random 32-value noise would make
  // every item nearly as close as any other, which no graph navigates well).
  const Catalog c = synthetic_catalog(3000, 12, 8, 11, {.spread = 0.3f});
  const Vectors q = clustered_vectors(200, 12, 8, 12, 0.3f);
  const SearchResults exact = ExactSearch(c).search(q.values.data(), 200, {.k = 10});
  HnswIndex index(c, {.m = 16, .ef_construction = 100, .ef_search = 128});
  const SearchResults approx = index.search(q.values.data(), 200, {.k = 10});
  CHECK(recall_at_k(approx, exact, 10) >= 0.97);
  int same_best = 0;
  for (std::size_t i = 0; i < approx.size(); ++i) {
    REQUIRE(approx[i].size() == 10);
    CHECK(std::is_sorted(approx[i].begin(), approx[i].end(), ranks_before));
    CHECK(approx[i][0].score <= exact[i][0].score + 1e-5f);  // cosine, as exact search gives it: never better
    same_best += approx[i][0].row == exact[i][0].row && approx[i][0].score == Approx(exact[i][0].score).margin(1e-5);
    CHECK(c.id(approx[i][0].row) == approx[i][0].id);
  }
  CHECK(same_best >= 195);
  // A tiny search list finds less, so ef really is the knob.
  index.set_ef_search(1);
  CHECK(recall_at_k(index.search(q.values.data(), 200, {.k = 10}), exact, 10) <
        recall_at_k(approx, exact, 10) + 1e-9);
}

TEST_CASE("HNSW: a class filter still returns k, falling back to exact search for rare classes", "[search][hnsw]") {
  Catalog c = synthetic_catalog(2000, 16, 4, 13, {.spread = 0.3f, .extra_names = 1});
  const std::vector<float> rare = clustered_vectors(12, 16, 1, 14).values;
  std::vector<std::int64_t> ids(12);
  std::iota(ids.begin(), ids.end(), 1);
  c.add(rare.data(), ids, std::vector<Label>(12, 4));  // 12 items of a fifth class
  const HnswIndex index(c, {.ef_search = 32});
  const Vectors q = clustered_vectors(20, 16, 4, 15);
  for (const auto& classes : {std::vector<Label>{1}, std::vector<Label>{4}, std::vector<Label>{0, 2}}) {
    const SearchOptions o{.k = 10, .classes = classes};
    const SearchResults approx = index.search(q.values.data(), 20, o);
    const SearchResults exact = ExactSearch(c).search(q.values.data(), 20, o);
    CHECK(recall_at_k(approx, exact, 10) >= 0.9);
    for (const auto& ns : approx) {
      CHECK(ns.size() == 10);
      for (const Neighbour& n : ns) CHECK(std::find(classes.begin(), classes.end(), c.label(n.row)) != classes.end());
    }
  }
  CHECK_THROWS_WITH(HnswIndex(c, {.m = 1}), Contains("m must be in [2, 256], got 1"));
  CHECK_THROWS_WITH(index.search(q.values.data(), 1, {.k = 0}), Contains("k must be at least 1"));
  std::vector<float> long_query = q.values;
  long_query[16 + 2] = 1.63e36f;
  CHECK_THROWS_WITH(index.search(long_query.data(), 2, {.k = 10}), Contains("query 1 has length 1.63e+36"));
}

TEST_CASE("HNSW: an int8 catalog is searched through its decoded vectors", "[search][hnsw]") {
  const Catalog c = synthetic_catalog(1500, 32, 6, 16, {.encoding = VectorEncoding::Int8, .spread = 0.3f});
  const Vectors q = clustered_vectors(50, 32, 6, 17);
  const SearchResults exact = ExactSearch(c).search(q.values.data(), 50, {.k = 10});
  const SearchResults approx = HnswIndex(c, {.ef_search = 100}).search(q.values.data(), 50, {.k = 10});
  CHECK(recall_at_k(approx, exact, 10) >= 0.95);
}
