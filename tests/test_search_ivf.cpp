// The inverted-file backend against exact search on small synthetic sets:
// exactness when every list is scanned, recall and its knob, the class
// filter, int8 catalogs, determinism, and option errors.

#include <catch2/catch.hpp>

#include "loom/search/exact_search.hpp"
#include "loom/search/ivf_index.hpp"
#include "loom/search/retrieval_metrics.hpp"
#include "search_fixtures.hpp"

using namespace loom;
using namespace loom::search;
using namespace loom::testing;
using Catch::Contains;

namespace {

// A catalog whose labels cut across its clusters (label = row mod `classes`),
// so that the lists near a query hold items of every class.
Catalog mixed_label_catalog(Index n, Index dim, Label clusters, Label classes, std::uint64_t seed) {
  std::vector<std::string> names;
  for (Label c = 0; c < classes + 1; ++c) names.push_back("class" + std::to_string(c));
  Catalog c({.dim = dim, .class_names = names});
  const Vectors v = clustered_vectors(n, dim, clusters, seed, 0.3f);
  std::vector<std::int64_t> ids(static_cast<std::size_t>(n));
  std::vector<Label> labels(static_cast<std::size_t>(n));
  for (Index i = 0; i < n; ++i) {
    ids[static_cast<std::size_t>(i)] = 5000 + 7 * i;
    labels[static_cast<std::size_t>(i)] = static_cast<Label>(i % classes);
  }
  c.add(v.values.data(), ids, labels);
  return c;
}

}  // namespace

TEST_CASE("IVF: scanning every list gives exact search's top k, scores and order included", "[search][ivf]") {
  const Catalog c = synthetic_catalog(2000, 16, 8, 21, {.spread = 0.3f});
  const Vectors q = clustered_vectors(60, 16, 8, 22, 0.3f);
  const IvfIndex index(c, {.nlist = 16, .nprobe = 16});
  const SearchResults exact = ExactSearch(c).search(q.values.data(), 60, {.k = 10});
  CHECK(index.search(q.values.data(), 60, {.k = 10}) == exact);
  CHECK(index.search(q.values.data(), 1, {.k = 10})[0] == exact[0]);  // one query: the other path through the centroids
}

TEST_CASE("IVF: recall@10 against exact search, with nprobe as the knob", "[search][ivf]") {
  const Catalog c = mixed_label_catalog(4000, 24, 40, 3, 23);
  const Vectors q = clustered_vectors(200, 24, 40, 24, 0.3f);
  const SearchResults exact = ExactSearch(c).search(q.values.data(), 200, {.k = 10});
  IvfIndex index(c, {.nlist = 64, .nprobe = 1});
  const double one = recall_at_k(index.search(q.values.data(), 200, {.k = 10}), exact, 10);
  index.set_nprobe(8);
  const SearchResults approx = index.search(q.values.data(), 200, {.k = 10});
  const double eight = recall_at_k(approx, exact, 10);
  CHECK(eight >= 0.97);
  CHECK(one < eight);
  for (std::size_t i = 0; i < approx.size(); ++i) {
    REQUIRE(approx[i].size() == 10);
    CHECK(std::is_sorted(approx[i].begin(), approx[i].end(), ranks_before));
    CHECK(c.id(approx[i][0].row) == approx[i][0].id);
  }
}

TEST_CASE("IVF: a class filter returns k from the lists, falling back to exact search for rare classes",
          "[search][ivf]") {
  Catalog c = mixed_label_catalog(3000, 16, 30, 3, 25);
  const std::vector<float> rare = clustered_vectors(12, 16, 1, 26).values;
  std::vector<std::int64_t> ids(12);
  std::iota(ids.begin(), ids.end(), 1);
  c.add(rare.data(), ids, std::vector<Label>(12, 3));  // 12 items of a fourth class, all in one place
  const IvfIndex index(c, {.nlist = 48, .nprobe = 6});
  const Vectors q = clustered_vectors(30, 16, 30, 27, 0.3f);
  for (const auto& classes : {std::vector<Label>{1}, std::vector<Label>{3}, std::vector<Label>{0, 2}}) {
    const SearchOptions o{.k = 10, .classes = classes};
    const SearchResults approx = index.search(q.values.data(), 30, o);
    const SearchResults exact = ExactSearch(c).search(q.values.data(), 30, o);
    CHECK(recall_at_k(approx, exact, 10) >= 0.9);
    for (const auto& ns : approx) {
      CHECK(ns.size() == 10);
      for (const Neighbour& n : ns) CHECK(std::find(classes.begin(), classes.end(), c.label(n.row)) != classes.end());
    }
    if (classes == std::vector<Label>{3}) CHECK(approx == exact);  // only 12 exist: exact search answered
  }
}

TEST_CASE("IVF: an int8 catalog is searched through its decoded vectors", "[search][ivf]") {
  const Catalog c = synthetic_catalog(1500, 32, 6, 28, {.encoding = VectorEncoding::Int8, .spread = 0.3f});
  const Vectors q = clustered_vectors(50, 32, 6, 29, 0.3f);
  const SearchResults exact = ExactSearch(c).search(q.values.data(), 50, {.k = 10});
  // Every list scanned: exact search's answer, scored from the same decoded vectors.
  CHECK(IvfIndex(c, {.nlist = 12, .nprobe = 12}).search(q.values.data(), 50, {.k = 10}) == exact);
}

TEST_CASE("IVF: the same seed gives the same index, and nlist 0 is the square root of the item count",
          "[search][ivf]") {
  const Catalog c = mixed_label_catalog(2500, 16, 25, 2, 30);
  const Vectors q = clustered_vectors(40, 16, 25, 31, 0.3f);
  const IvfIndex a(c, {.nprobe = 2, .train_sample = 1000, .seed = 7});
  const IvfIndex b(c, {.nprobe = 2, .train_sample = 1000, .seed = 7});
  CHECK(a.options().nlist == 50);
  CHECK(a.search(q.values.data(), 40, {.k = 10}) == b.search(q.values.data(), 40, {.k = 10}));
  CHECK(a.memory_bytes() == b.memory_bytes());
}

TEST_CASE("IVF: bad options are refused with what was expected", "[search][ivf]") {
  const Catalog c = synthetic_catalog(300, 8, 3, 32);
  CHECK_THROWS_WITH(IvfIndex(c, {.nlist = 301}), Contains("nlist must be in [1, 300] (the catalog's items), got 301"));
  CHECK_THROWS_WITH(IvfIndex(c, {.nlist = -1}), Contains("nlist must be in [1, 300]"));
  CHECK_THROWS_WITH(IvfIndex(c, {.nlist = 10, .nprobe = 0}), Contains("nprobe must be in [1, nlist = 10], got 0"));
  CHECK_THROWS_WITH(IvfIndex(c, {.nlist = 10, .nprobe = 11}), Contains("nprobe must be in [1, nlist = 10], got 11"));
  CHECK_THROWS_WITH(IvfIndex(c, {.nlist = 10, .nprobe = 2, .shortlist = -1}), Contains("shortlist must be at least 0"));
  CHECK_THROWS_WITH(IvfIndex(c, {.nlist = 10, .nprobe = 2, .train_sample = 9}),
                    Contains("train_sample must be at least nlist = 10"));
  CHECK_THROWS_WITH(IvfIndex(Catalog({.dim = 8}), {}), Contains("the catalog is empty"));
  IvfIndex index(c, {.nlist = 10, .nprobe = 2});
  CHECK_THROWS_WITH(index.set_nprobe(20), Contains("nprobe must be in [1, nlist = 10], got 20"));
  CHECK(index.options().nprobe == 2);  // unchanged by the refused value
  const Vectors q = clustered_vectors(1, 8, 3, 33);
  CHECK_THROWS_WITH(index.search(q.values.data(), 1, {.k = 0}), Contains("k must be at least 1"));
  CHECK_THROWS_WITH(index.search(q.values.data(), 1, {.k = 10, .classes = {5}}), Contains("class label 5"));
  std::vector<float> long_query = q.values;
  long_query[0] += 1.0f;
  CHECK_THROWS_WITH(index.search(long_query.data(), 1, {.k = 10}), Contains("query 0 has length"));
}
