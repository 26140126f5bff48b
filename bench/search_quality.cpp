// loom_search_bench: the visual-search targets on real data, one JSON line.
//
//   build/bench/loom_search_bench --model seed.loom [--data DIR] [--threads 2]
//                                 [--queries 10000] [--baseline-queries 10000] [--photos 1000]
//                                 [--write-photos DIR]
//
// With the seed model (trained 5 epochs: build/bin/loom train --out seed.loom):
//   - embedding and indexing the 60,000 training images (Sequential::embed + Catalog::add);
//   - the catalog file: bytes, save and load seconds; bytes in memory; the same for int8;
//   - quality of the test images as queries against the catalog (exact search, k = 10):
//     precision@1, precision@10, mAP@10, for the embeddings, for int8 embeddings and for
//     raw-pixel vectors (the first --baseline-queries test images), and precision@10 of
//     photo-like queries (--photos test images made into photos, converted as loom predict does);
//   - speed of exact search: making its screening codes (once per catalog), all queries in
//     one batch, and one query at a time (median
//     and mean over 200 queries, after embedding).
// --write-photos DIR writes the photo of the first test image of a few classes as
// DIR/<class>.png, for trying loom search by hand (docs/visual-search.md shows them).
// Timings are wall-clock seconds on the threads given; the machine's other load counts.

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <numeric>
#include <string>
#include <vector>

#include "measure.hpp"
#include "loom/cli.hpp"
#include "loom/data/fashion_mnist.hpp"
#include "loom/image/fashion_mnist_preprocess.hpp"
#include "loom/image/image_tensor.hpp"
#include "loom/io/json.hpp"
#include "loom/io/model_file.hpp"
#include "loom/report/class_names.hpp"
#include "loom/search/catalog_file.hpp"
#include "loom/search/catalog_model.hpp"
#include "loom/search/exact_search.hpp"
#include "loom/search/pixel_vectors.hpp"
#include "loom/search/retrieval_metrics.hpp"
#include "loom/threads.hpp"
#include "photo_like.hpp"

using namespace loom;
using namespace loom::search;

namespace {

const char* kUsage =
    "usage: loom_search_bench --model MODEL [--data DIR] [--threads 2] [--queries 10000]\n"
    "                         [--baseline-queries 10000] [--photos 1000] [--write-photos DIR]\n";

using Clock = std::chrono::steady_clock;

std::string scores(const RetrievalScores& s) {
  return JsonObject().num("precision_at_1", s.precision_at_1).num("precision_at_10", s.precision_at_k)
      .num("map_at_10", s.map_at_k).integer("queries", s.queries).text();
}

std::vector<std::int64_t> iota_ids(Index n) {
  std::vector<std::int64_t> ids(static_cast<std::size_t>(n));
  std::iota(ids.begin(), ids.end(), 0);
  return ids;
}

std::vector<Label> labels_of(const Dataset& d) { return {d.labels().begin(), d.labels().end()}; }

}  // namespace

int main(int argc, char** argv) {
  return cli::run_main("loom_search_bench", [&] {
    std::string model_path, data, photo_dir;
    int threads = 2;
    Index queries = 10000, baseline_queries = 10000, photos = 1000;
    cli::parse_flags(argc, argv, kUsage, [&](const std::string& flag, const char* v) {
      if (flag == "--model") model_path = v;
      else if (flag == "--data") data = v;
      else if (flag == "--threads") threads = cli::parse_int<int>(flag, v, 1);
      else if (flag == "--queries") queries = cli::parse_int(flag, v, 1);
      else if (flag == "--baseline-queries") baseline_queries = cli::parse_int(flag, v, 1);
      else if (flag == "--photos") photos = cli::parse_int(flag, v, 0);
      else if (flag == "--write-photos") photo_dir = v;
      else return false;
      return true;
    });
    if (model_path.empty()) throw UsageError(std::string("give --model\n") + kUsage);
    set_threads(threads);
    const Sequential model = load_model(model_path);
    const auto dir = fashion_mnist::find_data_dir(data.empty() ? std::nullopt : std::optional<std::string>(data));
    const Dataset train = fashion_mnist::load_train(dir);
    Dataset test = fashion_mnist::load_test(dir);
    test = test.head(std::min(queries, test.size()));
    const std::vector<std::string> names = to_class_names(fashion_mnist::class_names);
    const std::vector<Label> truth = labels_of(test);
    const std::vector<std::int64_t> ids = iota_ids(train.size());

    if (!photo_dir.empty()) {
      std::filesystem::create_directories(photo_dir);
      for (const Label c : {3, 6, 7, 8, 9}) {  // Dress, Shirt, Sneaker, Bag, Ankle boot
        Index i = 0;
        while (test.label(i) != c) ++i;
        std::string name = names[static_cast<std::size_t>(c)];
        std::replace(name.begin(), name.end(), ' ', '-');
        write_png(std::filesystem::path(photo_dir) / (name + ".png"), testing::light_background_photo(test.image_bytes(i)));
      }
    }

    // Embedding and indexing the training set.
    auto t0 = Clock::now();
    Catalog catalog(catalog_info_for(model, "", names));
    catalog.add(model.embed(train), ids, labels_of(train));
    const double index_seconds = bench::seconds_since(t0);

    // The file.
    const auto file = std::filesystem::temp_directory_path() / "loom-search-bench.ctlg";
    t0 = Clock::now();
    save_catalog(catalog, file);
    const double save_seconds = bench::seconds_since(t0);
    const auto file_bytes = std::filesystem::file_size(file);
    t0 = Clock::now();
    const Catalog loaded = load_catalog(file);
    const double load_seconds = bench::seconds_since(t0);

    // Queries: embedding, then search of them all.
    t0 = Clock::now();
    const Tensor q = model.embed(test);
    const double query_embed_seconds = bench::seconds_since(t0);
    t0 = Clock::now();
    const ExactSearch exact(loaded);  // its screening codes, made once per catalog
    const double exact_build_seconds = bench::seconds_since(t0);
    t0 = Clock::now();
    const SearchResults found = exact.search(q, {.k = 10});
    const double batch_seconds = bench::seconds_since(t0);
    const RetrievalScores learnt = score_retrieval(truth, found, loaded, 10);

    // One query at a time.
    std::vector<double> single;
    const Index d = loaded.dim();
    for (Index i = 0; i < std::min<Index>(200, test.size()); ++i) {
      t0 = Clock::now();
      const SearchResults r = exact.search(q.data() + i * d, 1, {.k = 10});
      single.push_back(bench::seconds_since(t0));
      if (r[0].size() != 10) throw Error("single query returned " + std::to_string(r[0].size()));
    }
    std::vector<double> sorted = single;
    std::sort(sorted.begin(), sorted.end());
    const double single_median = sorted[sorted.size() / 2];
    const double single_mean = std::accumulate(single.begin(), single.end(), 0.0) / static_cast<double>(single.size());

    // int8.
    const Catalog int8 = loaded.with_encoding(VectorEncoding::Int8);
    save_catalog(int8, file);
    const auto int8_file_bytes = std::filesystem::file_size(file);
    std::filesystem::remove(file);
    const ExactSearch exact8(int8);
    t0 = Clock::now();
    const SearchResults found8 = exact8.search(q, {.k = 10});
    const double int8_batch_seconds = bench::seconds_since(t0);
    const RetrievalScores learnt8 = score_retrieval(truth, found8, int8, 10);

    // Photo-like queries: test images as product photos, converted as loom predict does.
    std::string photo_json = "null";
    if (photos > 0) {
      const Dataset some = test.head(std::min(photos, test.size()));
      std::vector<Image> seen;
      for (Index i = 0; i < some.size(); ++i)
        seen.push_back(fashion_mnist::preprocess(testing::light_background_photo(some.image_bytes(i))).image);
      const SearchResults r = exact.search(model.embed(to_tensor(seen)), {.k = 10});
      photo_json = scores(score_retrieval(labels_of(some), r, loaded, 10));
    }

    // Raw pixels: the baseline.
    t0 = Clock::now();
    Catalog raw({.dim = train.shape().size(), .class_names = names});
    raw.add(pixel_vectors(train), ids, labels_of(train));
    const Dataset base_test = test.head(std::min(baseline_queries, test.size()));
    const SearchResults raw_found = ExactSearch(raw).search(pixel_vectors(base_test), {.k = 10});
    const RetrievalScores pixels = score_retrieval(labels_of(base_test), raw_found, raw, 10);
    const double raw_seconds = bench::seconds_since(t0);

    std::cout << JsonObject()
                     .str("benchmark", "visual_search")
                     .integer("threads", threads)
                     .integer("catalog_items", loaded.size())
                     .integer("dim", loaded.dim())
                     .num("index_seconds", index_seconds)
                     .integer("file_bytes", static_cast<long long>(file_bytes))
                     .integer("memory_bytes", static_cast<long long>(loaded.memory_bytes()))
                     .num("save_seconds", save_seconds)
                     .num("load_seconds", load_seconds)
                     .num("query_embed_seconds", query_embed_seconds)
                     .num("exact_build_seconds", exact_build_seconds)
                     .integer("exact_memory_bytes", static_cast<long long>(exact.memory_bytes()))
                     .num("all_queries_search_seconds", batch_seconds)
                     .num("one_query_median_ms", single_median * 1e3)
                     .num("one_query_mean_ms", single_mean * 1e3)
                     .raw("embedding", scores(learnt))
                     .raw("int8", JsonObject()
                                      .raw("scores", scores(learnt8))
                                      .integer("file_bytes", static_cast<long long>(int8_file_bytes))
                                      .integer("memory_bytes", static_cast<long long>(int8.memory_bytes()))
                                      .num("all_queries_search_seconds", int8_batch_seconds)
                                      .text())
                     .raw("photo_queries", photo_json)
                     .raw("raw_pixels", scores(pixels))
                     .num("raw_pixels_seconds", raw_seconds)
                     .text()
              << '\n';
    return 0;
  });
}
