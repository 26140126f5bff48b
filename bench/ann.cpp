// loom_ann_bench: approximate (IVF or HNSW) against exact search on
// synthetic vectors, one JSON line.
//
//   build/bench/loom_ann_bench [--n 1000000] [--dim 128] [--queries 1000] [--clusters 1000] [--threads 2]
//                              [--index ivf|hnsw|none]
//                              ivf:  [--nlist 0] [--train-sample 65536] [--shortlist 0] [--nprobe 1,2,3,4,8,16]
//                              hnsw: [--m 16] [--ef-construction 100] [--ef 16,32,64,128,256]
//
// The vectors are a mixture of --clusters Gaussian clusters on the unit
// sphere (uniform random vectors in 128 dimensions have no neighbours worth
// the name: every item is almost equally far from a query). Queries are drawn
// from the same mixture. Exact search gives the true top 10 of every query
// (all queries in one batch on --threads threads) and its one-query latency
// (median of 20, on --threads threads); the index is built on --threads
// threads; then, on ONE thread, each value of its search knob (--nprobe or
// --ef) is timed over all queries in one batch and over the queries one at a
// time (queries per second per thread), and scored by recall@10 against the
// truth. The process's CPU time over the timed search, divided by its wall
// time, is reported too: about 1 when the search really ran on one thread.
// --index none: exact search only.

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <cmath>
#include <iostream>
#include <numeric>
#include <sstream>
#include <string>
#include <vector>

#include "measure.hpp"
#include "loom/cli.hpp"
#include "loom/io/json.hpp"
#include "loom/random.hpp"
#include "loom/search/embed.hpp"
#include "loom/search/exact_search.hpp"
#include "loom/search/hnsw_index.hpp"
#include "loom/search/ivf_index.hpp"
#include "loom/search/retrieval_metrics.hpp"
#include "loom/threads.hpp"

using namespace loom;
using namespace loom::search;

namespace {

const char* kUsage =
    "usage: loom_ann_bench [--n 1000000] [--dim 128] [--queries 1000] [--clusters 1000] [--threads 2]\n"
    "                      [--index ivf|hnsw|none] [--nlist 0] [--train-sample 65536] [--shortlist 0]\n"
    "                      [--nprobe 1,2,3,4,8,16] [--m 16] [--ef-construction 100] [--ef 16,32,64,128,256]\n";

using Clock = std::chrono::steady_clock;

// User and system CPU seconds of the whole process so far.
double cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         1e-6 * static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

std::vector<int> parse_list(const std::string& flag, const char* v) {
  std::vector<int> out;
  std::stringstream s(v);
  for (std::string e; std::getline(s, e, ',');) out.push_back(cli::parse_int<int>(flag, e.c_str(), 1));
  return out;
}

// For each value of an index's search knob (set by `set`): recall@10 against
// truth, and queries per second on the one thread this runs on, in one batch
// and one query at a time. JSON objects, comma-separated.
std::string sweep(const char* knob, const std::vector<int>& values, const std::function<void(int)>& set,
                  const VectorIndex& index, const std::vector<float>& q, Index queries, const SearchResults& truth) {
  const Index dim = index.catalog().dim();
  set(values.front());  // one untimed pass first: the first timed one had run at two thirds of the speed of the next
  (void)index.search(q.data(), queries, {.k = 10});
  std::string runs;
  for (const int v : values) {
    set(v);
    const double cpu0 = cpu_seconds();
    auto t0 = Clock::now();
    const SearchResults r = index.search(q.data(), queries, {.k = 10});
    const double batch = bench::seconds_since(t0), cpu_per_wall = (cpu_seconds() - cpu0) / batch;
    t0 = Clock::now();
    for (Index i = 0; i < queries; ++i) (void)index.search(q.data() + i * dim, 1, {.k = 10});
    const double one_at_a_time = bench::seconds_since(t0);
    runs += (runs.empty() ? "" : ", ") + JsonObject()
                                            .integer(knob, v)
                                            .num("recall_at_10", recall_at_k(r, truth, 10))
                                            .num("queries_per_second_per_thread", static_cast<double>(queries) / batch)
                                            .num("one_at_a_time_queries_per_second",
                                                 static_cast<double>(queries) / one_at_a_time)
                                            .num("cpu_per_wall", cpu_per_wall, 3)
                                            .text();
  }
  return "[" + runs + "]";
}

// A standard normal draw (Box-Muller).
float normal(Random& rng) {
  const float u1 = std::max(rng.uniform01(), 1e-7f), u2 = rng.uniform01();
  return std::sqrt(-2.0f * std::log(u1)) * std::cos(6.28318531f * u2);
}

// n unit vectors around `centres` (k, dim): centre + N(0, sigma^2) per value, normalised.
std::vector<float> mixture(Index n, Index dim, const std::vector<float>& centres, Index k, Random& rng) {
  std::vector<float> v(static_cast<std::size_t>(n * dim));
  const float sigma = 1.0f / std::sqrt(static_cast<float>(dim));  // noise as large as the centre
  for (Index i = 0; i < n; ++i) {
    const auto c = static_cast<Index>(rng.below(static_cast<std::uint64_t>(k)));
    for (Index j = 0; j < dim; ++j)
      v[static_cast<std::size_t>(i * dim + j)] = centres[static_cast<std::size_t>(c * dim + j)] + sigma * normal(rng);
  }
  l2_normalize_rows(v.data(), n, dim);
  return v;
}

}  // namespace

int main(int argc, char** argv) {
  return cli::run_main("loom_ann_bench", [&] {
    Index n = 1000000, dim = 128, queries = 1000, clusters = 1000, nlist = 0, train_sample = 65536, shortlist = 0;
    int m = 16, ef_construction = 100, threads = 2;
    std::string kind = "ivf";
    std::vector<int> efs{16, 32, 64, 128, 256}, nprobes{1, 2, 3, 4, 8, 16};
    cli::parse_flags(argc, argv, kUsage, [&](const std::string& flag, const char* v) {
      if (flag == "--n") n = cli::parse_int(flag, v, 100);
      else if (flag == "--dim") dim = cli::parse_int(flag, v, 1);
      else if (flag == "--queries") queries = cli::parse_int(flag, v, 1);
      else if (flag == "--clusters") clusters = cli::parse_int(flag, v, 1);
      else if (flag == "--threads") threads = cli::parse_int<int>(flag, v, 1);
      else if (flag == "--index") {
        kind = v;
        if (kind != "ivf" && kind != "hnsw" && kind != "none")
          throw UsageError("--index must be ivf, hnsw or none, got '" + kind + "'");
      } else if (flag == "--nlist") nlist = cli::parse_int(flag, v, 0);
      else if (flag == "--train-sample") train_sample = cli::parse_int(flag, v, 1);
      else if (flag == "--shortlist") shortlist = cli::parse_int(flag, v, 0);
      else if (flag == "--nprobe") nprobes = parse_list(flag, v);
      else if (flag == "--m") m = cli::parse_int<int>(flag, v, 2);
      else if (flag == "--ef-construction") ef_construction = cli::parse_int<int>(flag, v, 1);
      else if (flag == "--ef") efs = parse_list(flag, v);
      else return false;
      return true;
    });
    for (int& e : efs) e = std::max(e, 10);  // hnswlib needs a candidate list of at least k
    set_threads(threads);
    Random rng(2026);
    std::vector<float> centres(static_cast<std::size_t>(clusters * dim));
    for (float& c : centres) c = normal(rng);
    l2_normalize_rows(centres.data(), clusters, dim);
    auto t0 = Clock::now();
    const std::vector<float> items = mixture(n, dim, centres, clusters, rng);
    const std::vector<float> q = mixture(queries, dim, centres, clusters, rng);
    Catalog catalog({.dim = dim, .class_names = {"all"}});
    std::vector<std::int64_t> ids(static_cast<std::size_t>(n));
    std::iota(ids.begin(), ids.end(), 0);
    catalog.add(items.data(), ids, std::vector<Label>(static_cast<std::size_t>(n), 0));
    const double generate_seconds = bench::seconds_since(t0);

    t0 = Clock::now();
    const ExactSearch exact(catalog);  // its screening codes
    const double exact_build_seconds = bench::seconds_since(t0);
    t0 = Clock::now();
    const SearchResults truth = exact.search(q.data(), queries, {.k = 10});
    const double exact_batch_seconds = bench::seconds_since(t0);
    std::vector<double> single;
    for (Index i = 0; i < std::min<Index>(20, queries); ++i) {
      t0 = Clock::now();
      (void)exact.search(q.data() + i * dim, 1, {.k = 10});
      single.push_back(bench::seconds_since(t0));
    }
    std::sort(single.begin(), single.end());
    JsonObject out;
    out.str("benchmark", "ann")
        .integer("n", n)
        .integer("dim", dim)
        .integer("queries", queries)
        .integer("clusters", clusters)
        .integer("threads", threads)
        .num("generate_seconds", generate_seconds)
        .num("exact_build_seconds", exact_build_seconds)
        .integer("exact_screened_values", exact.screened_values())
        .integer("exact_memory_bytes", static_cast<long long>(exact.memory_bytes()))
        .num("exact_all_queries_seconds", exact_batch_seconds)
        .num("exact_one_query_median_ms", single[single.size() / 2] * 1e3)
        .str("index", kind);

    if (kind == "ivf") {
      t0 = Clock::now();
      IvfIndex index(catalog, {.nlist = nlist, .nprobe = 1, .shortlist = shortlist, .train_sample = train_sample});
      const double build_seconds = bench::seconds_since(t0);
      set_threads(1);
      const std::string runs = sweep("nprobe", nprobes, [&](int v) { index.set_nprobe(v); }, index, q, queries, truth);
      out.integer("ivf_nlist", index.options().nlist)
          .integer("ivf_train_sample", std::min(train_sample, n))
          .integer("ivf_shortlist", shortlist > 0 ? shortlist : 40)
          .num("ivf_build_seconds", build_seconds)
          .integer("ivf_memory_bytes", static_cast<long long>(index.memory_bytes()))
          .raw("ivf", runs);
    } else if (kind == "hnsw") {
      t0 = Clock::now();
      HnswIndex index(catalog, {.m = m, .ef_construction = ef_construction, .ef_search = efs.front()});
      const double build_seconds = bench::seconds_since(t0);
      set_threads(1);
      const std::string runs =
          sweep("ef", efs, [&](int v) { index.set_ef_search(v); }, index, q, queries, truth);
      out.integer("hnsw_m", m)
          .integer("hnsw_ef_construction", ef_construction)
          .num("hnsw_build_seconds", build_seconds)
          .integer("hnsw_memory_bytes", static_cast<long long>(index.memory_bytes()))
          .raw("hnsw", runs);
    }
    std::cout << out.num("peak_rss_mb", bench::peak_rss_mb(), 4).text() << '\n';
    return 0;
  });
}
