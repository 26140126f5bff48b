// Exact search against a brute-force reference written independently here:
// every score, the order (score, then id), class filters that still return
// k, the edges of k, int8 catalogs, and results independent of the thread count.

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <omp.h>

#include "loom/search/exact_search.hpp"
#include "loom/search/retrieval_metrics.hpp"
#include "search_fixtures.hpp"

using namespace loom;
using namespace loom::search;
using namespace loom::testing;
using Catch::Contains;

namespace {

// The k best by double-precision dot product, among the allowed labels.
std::vector<Neighbour> brute_force(const Catalog& c, const float* q, Index k, const std::vector<Label>& classes) {
  std::vector<Neighbour> all;
  const std::vector<float> v = c.all_vectors();
  for (Index i = 0; i < c.size(); ++i) {
    if (!classes.empty() && std::find(classes.begin(), classes.end(), c.label(i)) == classes.end()) continue;
    double s = 0.0;
    for (Index j = 0; j < c.dim(); ++j) s += static_cast<double>(q[j]) * v[static_cast<std::size_t>(i * c.dim() + j)];
    all.push_back({i, c.id(i), static_cast<float>(s)});
  }
  std::sort(all.begin(), all.end(), [](const Neighbour& a, const Neighbour& b) {
    return a.score > b.score || (a.score == b.score && a.id < b.id);
  });
  all.resize(std::min<std::size_t>(all.size(), static_cast<std::size_t>(k)));
  return all;
}

void check_matches(const Catalog& c, const Vectors& queries, Index m, const SearchOptions& o) {
  const SearchResults r = ExactSearch(c).search(queries.values.data(), m, o);
  REQUIRE(r.size() == static_cast<std::size_t>(m));
  for (Index q = 0; q < m; ++q) {
    const auto expected = brute_force(c, queries.values.data() + q * c.dim(), o.k, o.classes);
    const auto& got = r[static_cast<std::size_t>(q)];
    REQUIRE(got.size() == expected.size());
    for (std::size_t i = 0; i < got.size(); ++i) {
      INFO("query " << q << " rank " << i);
      CHECK(got[i].score == Approx(expected[i].score).margin(1e-5));
      // Ranks agree unless two scores are closer than float rounding.
      if (i + 1 < got.size() && expected[i].score - expected[i + 1].score > 1e-5f) CHECK(got[i].id == expected[i].id);
      CHECK(c.id(got[i].row) == got[i].id);
    }
  }
}

}  // namespace

TEST_CASE("exact search: the brute-force top k, with and without a class filter", "[search][exact]") {
  // More items than a shard (8,192) and queries than a block (64), so tasks split both ways.
  const Catalog c = synthetic_catalog(9000, 24, 5, 1);
  const Vectors q = clustered_vectors(70, 24, 5, 2);
  check_matches(c, q, 70, {.k = 10});
  check_matches(c, q, 70, {.k = 1});
  check_matches(c, q, 70, {.k = 25, .classes = {3}});
  check_matches(c, q, 70, {.k = 5, .classes = {0, 4}});
}

TEST_CASE("exact search: a class filter returns k when k exist, all of them when fewer", "[search][exact]") {
  Catalog c = synthetic_catalog(300, 8, 3, 3, {.extra_names = 1});
  const std::vector<float> rare(16, 0.35355339f);  // two items of 8 values
  c.add(rare.data(), std::vector<std::int64_t>{1, 2}, std::vector<Label>{3, 3});  // only two items of class 3
  const Vectors q = clustered_vectors(4, 8, 3, 4);
  const SearchResults r = ExactSearch(c).search(q.values.data(), 4, {.k = 10, .classes = {3}});
  for (const auto& ns : r) {
    REQUIRE(ns.size() == 2);
    CHECK(ns[0].id == 1);  // the same vector: equal scores, smaller id first
    CHECK(ns[1].id == 2);
  }
  const SearchResults r0 = ExactSearch(c).search(q.values.data(), 4, {.k = 10, .classes = {0}});
  for (const auto& ns : r0) {
    CHECK(ns.size() == 10);
    for (const Neighbour& n : ns) CHECK(c.label(n.row) == 0);
  }
}

TEST_CASE("exact search: k edge cases and bad options", "[search][exact]") {
  const Catalog c = synthetic_catalog(30, 8, 3, 5);
  const Vectors q = clustered_vectors(2, 8, 3, 6);
  const ExactSearch s(c);
  const SearchResults all = s.search(q.values.data(), 2, {.k = 30});
  CHECK(all[0].size() == 30);
  CHECK(std::is_sorted(all[0].begin(), all[0].end(), ranks_before));
  CHECK_THROWS_AS(s.search(q.values.data(), 2, {.k = 0}), UsageError);
  CHECK_THROWS_WITH(s.search(q.values.data(), 2, {.k = 0}), Contains("k must be at least 1, got 0"));
  CHECK_THROWS_WITH(s.search(q.values.data(), 2, {.k = 31}), Contains("k = 31 is more than the catalog's 30 items"));
  CHECK_THROWS_WITH(s.search(q.values.data(), 2, {.k = 3, .classes = {5}}),
                    Contains("class label 5 is not one of the catalog's labels (0 to 2)"));
  CHECK(s.search(q.values.data(), 0, {.k = 3}).empty());
}

TEST_CASE("exact search: ties are broken by id, results do not depend on the thread count", "[search][exact]") {
  Catalog c({.dim = 4, .class_names = {"a"}});
  const std::vector<float> same{0.5f, 0.5f, 0.5f, 0.5f, 0.5f, 0.5f, 0.5f, 0.5f, 0.5f, 0.5f, 0.5f, 0.5f};
  c.add(same.data(), std::vector<std::int64_t>{9, 4, 6}, std::vector<Label>{0, 0, 0});
  const SearchResults r = ExactSearch(c).search(same.data(), 1, {.k = 2});
  CHECK(r[0][0].id == 4);
  CHECK(r[0][1].id == 6);

  const Catalog big = synthetic_catalog(10000, 32, 4, 7);
  const Vectors q = clustered_vectors(100, 32, 4, 8);
  const int threads = omp_get_max_threads();
  omp_set_num_threads(1);
  const SearchResults one = ExactSearch(big).search(q.values.data(), 100, {.k = 10});
  omp_set_num_threads(std::max(threads, 3));
  const SearchResults many = ExactSearch(big).search(q.values.data(), 100, {.k = 10});
  omp_set_num_threads(threads);
  CHECK(one == many);
}

TEST_CASE("exact search over an int8 catalog is exact for its decoded vectors, and near the float32 one", "[search][exact]") {
  const Catalog f = synthetic_catalog(3000, 64, 5, 9);
  const Catalog q8 = f.with_encoding(VectorEncoding::Int8);
  const Vectors q = clustered_vectors(50, 64, 5, 10);
  check_matches(q8, q, 50, {.k = 10});  // brute force scores the decoded int8 vectors
  const SearchResults exact = ExactSearch(f).search(q.values.data(), 50, {.k = 10});
  const SearchResults approx = ExactSearch(q8).search(q.values.data(), 50, {.k = 10});
  CHECK(recall_at_k(approx, exact, 10) >= 0.95);
  for (std::size_t i = 0; i < exact.size(); ++i) CHECK(approx[i][0].score == Approx(exact[i][0].score).margin(0.01));
}

// The screen rules items out by a bound; these catalogs make the bound work
// hard: no direction stronger than another (the rotation's head is nearly
// everything), odd and tiny dimensions, vectors of very different lengths,
// near-ties, and all-zero vectors. The results must still be brute force's.
TEST_CASE("exact search: the screen never drops a neighbour", "[search][exact]") {
  SECTION("no structure: uniform noise, odd dimension") {
    const Catalog c = synthetic_catalog(2000, 37, 2, 11, {.spread = 5.0f});
    check_matches(c, clustered_vectors(30, 37, 2, 12, 5.0f), 30, {.k = 10});
  }
  SECTION("one and three dimensions") {
    check_matches(synthetic_catalog(500, 1, 2, 13), clustered_vectors(10, 1, 2, 14), 10, {.k = 7});
    check_matches(synthetic_catalog(500, 3, 2, 15), clustered_vectors(10, 3, 2, 16), 10, {.k = 7});
  }
  SECTION("many dimensions, as raw pixels") {
    check_matches(synthetic_catalog(600, 784, 4, 17), clustered_vectors(5, 784, 4, 18), 5, {.k = 10});
  }
  SECTION("lengths anywhere in what a catalog accepts as unit, and zero vectors") {
    // The screen's bounds come from each vector's own length, not from 1.
    const float tolerance = static_cast<float>(search::unit_length_tolerance(16)) * 0.999f;
    Vectors v = clustered_vectors(3000, 16, 3, 19);
    Random rng(20);
    for (Index i = 0; i < 3000; ++i) {
      const float length = i % 97 == 0 ? 0.0f : 1.0f + rng.uniform(-tolerance, tolerance);
      for (Index j = 0; j < 16; ++j) v.values[static_cast<std::size_t>(i * 16 + j)] *= length;
    }
    Catalog c({.dim = 16, .class_names = {"a", "b", "c"}});
    std::vector<std::int64_t> ids(3000);
    std::iota(ids.begin(), ids.end(), 0);
    c.add(v.values.data(), ids, v.labels);
    Vectors q = clustered_vectors(20, 16, 3, 21);
    for (Index j = 0; j < 16; ++j) {
      q.values[static_cast<std::size_t>(j)] *= 1.0f + tolerance;       // the longest query accepted
      q.values[static_cast<std::size_t>(16 + j)] *= 1.0f - tolerance;  // and the shortest
    }
    check_matches(c, q, 20, {.k = 10});
    check_matches(c.with_encoding(VectorEncoding::Int8), q, 20, {.k = 10});
  }
  SECTION("near-ties: one vector with noise below float32's resolution of the scores") {
    const Vectors base = clustered_vectors(1, 24, 1, 22);
    Random rng(23);
    std::vector<float> v(static_cast<std::size_t>(5000 * 24));
    for (std::size_t i = 0; i < v.size(); ++i) v[i] = base.values[i % 24] + rng.uniform(-1e-4f, 1e-4f);
    Catalog c({.dim = 24, .class_names = {"a"}});
    std::vector<std::int64_t> ids(5000);
    std::iota(ids.begin(), ids.end(), 0);
    c.add(v.data(), ids, std::vector<Label>(5000, 0));
    check_matches(c, base, 1, {.k = 20});
  }
}

// Exact search first scores a few items near each query (floor_seeds.hpp)
// and starts the scan at their k-th best score: items scoring exactly that
// must still be kept, ties still broken by id, and a class filter that
// leaves fewer than k seeds must not seed at all.
TEST_CASE("exact search: the floor seeds keep ties at the floor and respect class filters", "[search][exact]") {
  const Index n = 4096, dim = 16;
  Vectors v = clustered_vectors(n, dim, 4, 26);
  const Vectors target = clustered_vectors(1, dim, 1, 27);
  // 40 copies of one vector, scattered through the catalog: with it as the
  // query, the top 10 are 10 of them, all of the same score.
  for (Index i = 0; i < 40; ++i)
    std::copy_n(target.values.begin(), dim, v.values.begin() + (i * 101 + 7) * dim);
  Catalog c({.dim = dim, .class_names = {"a", "b", "c", "d"}});
  std::vector<std::int64_t> ids(static_cast<std::size_t>(n));
  for (Index i = 0; i < n; ++i) ids[static_cast<std::size_t>(i)] = (i * 7919) % n;  // ids in another order than rows
  c.add(v.values.data(), ids, v.labels);
  REQUIRE(FloorSeeds(c).clusters() > 0);
  const ExactSearch s(c);
  const SearchResults r = s.search(target.values.data(), 1, {.k = 10});
  std::vector<std::int64_t> copies;
  for (Index i = 0; i < 40; ++i) copies.push_back(ids[static_cast<std::size_t>(i * 101 + 7)]);
  std::sort(copies.begin(), copies.end());
  REQUIRE(r[0].size() == 10);
  for (std::size_t i = 0; i < 10; ++i) {
    CHECK(r[0][i].id == copies[i]);
    CHECK(r[0][i].score == r[0][0].score);
  }
  check_matches(c, target, 1, {.k = 10});
  check_matches(c, target, 1, {.k = 40});
  check_matches(c, target, 1, {.k = 45});  // past the copies: the next best
  const Vectors q = clustered_vectors(20, dim, 4, 28);
  for (Label l = 0; l < 4; ++l) check_matches(c, q, 20, {.k = 30, .classes = {l}});
  check_matches(c, q, 20, {.k = 3, .classes = {1, 2}});
}

TEST_CASE("exact search: floor seeds are clusters for catalogs large enough, rows inside the catalog", "[search][exact]") {
  CHECK(FloorSeeds(synthetic_catalog(1000, 16, 3, 29)).clusters() == 0);   // too few items
  CHECK(FloorSeeds(synthetic_catalog(3000, 600, 3, 30)).clusters() == 0);  // too many values
  const Catalog c = synthetic_catalog(5000, 24, 3, 31);
  const FloorSeeds seeds(c);
  REQUIRE(seeds.clusters() > 0);
  const Vectors q = clustered_vectors(50, 24, 3, 32);
  for (Index i = 0; i < 50; ++i) {
    const auto rows = seeds.rows_for(q.values.data() + i * 24);
    CHECK(!rows.empty());
    CHECK(rows.size() <= static_cast<std::size_t>(FloorSeeds::kItemsPerCluster));
    std::vector<Index> sorted(rows.begin(), rows.end());
    std::sort(sorted.begin(), sorted.end());
    CHECK(std::adjacent_find(sorted.begin(), sorted.end()) == sorted.end());
    for (const Index row : rows) CHECK((row >= 0 && row < c.size()));
  }
}

TEST_CASE("exact search: queries not finite or not of unit length, and a changed catalog, are errors", "[search][exact]") {
  Catalog c = synthetic_catalog(100, 8, 2, 24);
  const Vectors q = clustered_vectors(3, 8, 2, 25);
  const ExactSearch s(c);
  std::vector<float> bad = q.values;
  bad[8 + 3] = std::numeric_limits<float>::quiet_NaN();
  CHECK_THROWS_AS(s.search(bad.data(), 3, {.k = 5}), UsageError);
  CHECK_THROWS_WITH(s.search(bad.data(), 3, {.k = 5}), Contains("query 1 has a value that is not finite"));
  bad[8 + 3] = 1.63e36f;  // finite, but its square is not a float: the screen's bounds would be
  CHECK_THROWS_WITH(s.search(bad.data(), 3, {.k = 5}), Contains("query 1 has length 1.63e+36"));
  for (float& v : bad) v = q.values[0] * 0.5f;
  CHECK_THROWS_WITH(s.search(bad.data(), 3, {.k = 5}), Contains("query 0 has length"));
  std::fill(bad.begin(), bad.end(), 0.0f);  // all zero: every score 0, still k results
  const SearchResults zero = s.search(bad.data(), 3, {.k = 5});
  CHECK(zero[2].size() == 5);
  CHECK(zero[2][0].score == 0.0f);
  c.add(q.values.data(), std::vector<std::int64_t>{1, 2, 4}, q.labels);
  CHECK_THROWS_WITH(s.search(q.values.data(), 3, {.k = 5}), Contains("the catalog changed (100 items, now 103)"));
}

TEST_CASE("retrieval metrics: precision@k and mAP@k by hand", "[search][metrics]") {
  Catalog c({.dim = 1, .class_names = {"a", "b"}});
  const std::vector<float> v(6, 1.0f);
  c.add(v.data(), std::vector<std::int64_t>{0, 1, 2, 3, 4, 5}, std::vector<Label>{0, 1, 0, 1, 0, 0});
  // Query of class 0 whose neighbours are rows 0 (rel), 1 (not), 2 (rel): P@1 1, P@3 2/3,
  // AP@3 = (1/1 + 2/3) / min(3, 4 items of class 0) = 0.5556.
  const SearchResults r{{{0, 0, 1.0f}, {1, 1, 0.9f}, {2, 2, 0.8f}}};
  const RetrievalScores s = score_retrieval(std::vector<Label>{0}, r, c, 3);
  CHECK(s.precision_at_1 == Approx(1.0));
  CHECK(s.precision_at_k == Approx(2.0 / 3.0));
  CHECK(s.map_at_k == Approx((1.0 + 2.0 / 3.0) / 3.0));
  const SearchResults exact{{{0, 0, 1.0f}, {2, 2, 0.9f}}}, approx{{{0, 0, 1.0f}, {4, 4, 0.9f}}};
  CHECK(recall_at_k(approx, exact, 2) == Approx(0.5));
}
