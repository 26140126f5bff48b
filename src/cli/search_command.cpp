// loom search: the catalog items that look most like each query image, or
// (--evaluate) how well the catalog retrieves the Fashion-MNIST test images'
// classes, next to raw-pixel vectors (loom/search/, docs/visual-search.md).

#include <cstdio>
#include <filesystem>
#include <iostream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "commands.hpp"
#include "image_inputs.hpp"
#include "loom/cli.hpp"
#include "loom/data/fashion_mnist.hpp"
#include "loom/io/json.hpp"
#include "loom/io/model_file.hpp"
#include "loom/report/neighbour_grid.hpp"
#include "loom/search/catalog_file.hpp"
#include "loom/search/catalog_model.hpp"
#include "loom/search/exact_search.hpp"
#include "loom/search/hnsw_index.hpp"
#include "loom/search/ivf_index.hpp"
#include "loom/search/pixel_vectors.hpp"
#include "loom/search/retrieval_metrics.hpp"
#include "loom/training/progress.hpp"

namespace loom::tool {
namespace {

namespace fs = std::filesystem;
using namespace loom::search;

const char* kUsage =
    "usage: loom search CATALOG IMAGE... [options]\n"
    "       loom search CATALOG --evaluate [--approximate] [--data DIR] [--limit N] [--json]\n"
    "Finds the catalog items (from `loom index`) that look most like each image file: the image\n"
    "is converted as loom predict converts it and embedded by the catalog's model, and items are\n"
    "ranked by cosine similarity (score 1: the same direction).\n"
    "  --k N              neighbours per image (default 10)\n"
    "  --class NAME       only items of this class; repeat or separate by commas for several\n"
    "  --json             one JSON object per image per line, in the order given: {\"file\",\n"
    "                     \"neighbours\": [{\"id\", \"label\", \"class\", \"score\", \"path\"}, ...]}\n"
    "                     (\"path\" for items indexed from files); an unreadable image gives {\"file\", \"error\"}\n"
    "  --grid FILE.png    draw each image, what the model saw and its neighbours with their scores\n"
    "  --approximate      search an index built from the catalog instead of every item\n"
    "  --index hnsw|ivf   with --approximate: an HNSW graph (default) or an inverted file\n"
    "  --ef N             hnsw: the graph's search list, at least k (default 64): recall against speed\n"
    "  --nprobe N         ivf: lists scanned per query, of about sqrt(items) (default 16): recall against speed\n"
    "  --model MODEL      embed with this model file instead of the catalog's own; refused unless\n"
    "                     it is the model that made the catalog\n"
    "  --data DIR         Fashion-MNIST folder: images of catalog items indexed with --data (for\n"
    "                     --grid), and the test set for --evaluate\n"
    "  --evaluate         score the test images as queries against the catalog: precision@1,\n"
    "                     precision@10 and mAP@10 (a neighbour is relevant when it has the query's\n"
    "                     class), next to the same for raw-pixel vectors of the same training images\n"
    "  --limit N          --evaluate on the first N test images only\n"
    "  --threads N        threads (default: all cores)\n"
    "Exit status: 0 when every image was searched, 1 when some could not be read (the others are).\n";

struct Args {
  std::optional<fs::path> catalog, model, grid;
  std::vector<std::string> images;
  std::optional<std::string> data;
  std::vector<std::string> classes;
  Index k = 10;
  std::optional<Index> limit;
  bool evaluate = false, approximate = false;
  std::optional<std::string> index;  // the approximate backend: hnsw or ivf
  int ef = 64;
  Index nprobe = 16;
  ThreadsAndJson common;
};

Args parse(int argc, char** argv) {
  Args a;
  cli::parse_args(
      argc, argv, 1, kUsage, {"--json", "--evaluate", "--approximate"},
      [&](const std::string& flag, const char* v) {
        if (flag == "--k") a.k = cli::parse_int(flag, v, 1);
        else if (flag == "--class") {
          std::stringstream names(v);
          for (std::string name; std::getline(names, name, ',');) a.classes.push_back(name);
        } else if (flag == "--grid") a.grid = v;
        else if (flag == "--model") a.model = v;
        else if (flag == "--data") a.data = v;
        else if (flag == "--limit") a.limit = cli::parse_int(flag, v, 1);
        else if (flag == "--evaluate") a.evaluate = true;
        else if (flag == "--approximate") a.approximate = true;
        else if (flag == "--ef") a.ef = cli::parse_int<int>(flag, v, 1);
        else if (flag == "--nprobe") a.nprobe = cli::parse_int(flag, v, 1);
        else if (flag == "--index") {
          a.index = v;
          if (*a.index != "hnsw" && *a.index != "ivf")
            throw UsageError("--index expects hnsw or ivf, got \"" + *a.index + "\"");
        }
        else return a.common.take(flag, v);
        return true;
      },
      [&](const std::string& arg) {
        if (!a.catalog) a.catalog = arg;
        else a.images.push_back(arg);
      });
  if (!a.catalog) throw UsageError(std::string("give a catalog and at least one image\n") + kUsage);
  if (a.index && !a.approximate) throw UsageError("--index chooses the approximate backend: give --approximate too");
  if (a.evaluate == !a.images.empty())
    throw UsageError(std::string(a.evaluate ? "--evaluate takes no images\n" : "give at least one image\n") + kUsage);
  return a;
}

// --class names as labels; UsageError naming the catalog's classes for an unknown one.
std::vector<Label> labels_of_classes(const Catalog& c, const std::vector<std::string>& names, const std::string& source) {
  std::vector<Label> labels;
  const auto& known = c.info().class_names;
  for (const std::string& name : names) {
    const auto it = std::find(known.begin(), known.end(), name);
    if (it == known.end()) {
      std::string list;
      for (const std::string& k : known) list += (list.empty() ? "\"" : ", \"") + k + "\"";
      throw UsageError("--class \"" + name + "\" is not a class of " + source + "; its classes: " + list);
    }
    labels.push_back(static_cast<Label>(it - known.begin()));
  }
  return labels;
}

std::unique_ptr<VectorIndex> make_index(const Catalog& c, const Args& args) {
  if (!args.approximate) return std::make_unique<ExactSearch>(c);
  if (args.index == "ivf")  // a small catalog has fewer than --nprobe lists: then all of them
    return std::make_unique<IvfIndex>(c, IvfOptions{.nprobe = std::min(args.nprobe, IvfIndex::default_nlist(c.size()))});
  return std::make_unique<HnswIndex>(c, HnswOptions{.ef_search = std::max(args.ef, static_cast<int>(args.k))});
}

std::string neighbours_json(const Catalog& c, const std::vector<Neighbour>& ns) {
  return json_array(ns, [&](const Neighbour& n) {
    JsonObject o;
    o.integer("id", n.id).integer("label", c.label(n.row)).str("class", c.class_name(c.label(n.row))).num("score", n.score);
    if (!c.path(n.row).empty()) o.str("path", c.path(n.row));
    return o.text();
  });
}

std::string scores_json(const RetrievalScores& s) {
  return JsonObject()
      .num("precision_at_1", s.precision_at_1)
      .num("precision_at_10", s.precision_at_k)
      .num("map_at_10", s.map_at_k)
      .text();
}

// The image of catalog item `row` as the model saw it: its file, converted,
// or its Fashion-MNIST training image.
Image item_image(const Catalog& c, Index row, const Sequential& model, const std::optional<Dataset>& train) {
  if (!c.path(row).empty()) {
    const std::string path = c.path(row);
    const ImageInputs in = read_image_inputs(std::span(&path, 1), model);
    if (in.seen.empty()) throw IoError(path + ": catalog item " + std::to_string(c.id(row)) + " cannot be drawn: " + in.items[0].error);
    return in.seen[0];
  }
  if (!train || c.id(row) < 0 || c.id(row) >= train->size())
    throw DataError("catalog item " + std::to_string(c.id(row)) + " has no file and is not a Fashion-MNIST training image");
  const auto bytes = train->image_bytes(c.id(row));
  const Shape s = train->shape();
  Image im(static_cast<int>(s.width()), static_cast<int>(s.height()), 1);
  std::copy(bytes.begin(), bytes.end(), im.pixels.begin());
  return im;
}

bool needs_training_images(const Catalog& c) {
  for (Index i = 0; i < c.size(); ++i)
    if (c.path(i).empty()) return true;
  return false;
}

int search_images(const Args& args, const Catalog& catalog, const Sequential& model) {
  check_takes_images(model, args.catalog->string(), "search");
  const SearchOptions options{.k = args.k, .classes = labels_of_classes(catalog, args.classes, args.catalog->string())};
  check_search_options(catalog, options);
  const ImageInputs inputs = read_image_inputs(args.images, model);
  SearchResults results;
  if (!inputs.seen.empty()) {
    const Tensor queries = model.embed(inputs.batch(), catalog.info().layer);
    results = make_index(catalog, args)->search(queries, options);
  }
  int failures = 0;
  std::vector<report::GridQuery> grid;
  std::optional<Dataset> train;
  if (args.grid && needs_training_images(catalog)) train = fashion_mnist::load_train(fashion_mnist::find_data_dir(args.data));
  for (const ImageInputs::Item& item : inputs.items) {  // in the order given
    if (item.row < 0) {
      ++failures;
      std::cerr << "loom search: " << item.error << '\n';
      if (args.common.json) std::cout << JsonObject().str("file", item.file).str("error", item.error).text() << '\n';
      continue;
    }
    const std::vector<Neighbour>& ns = results[static_cast<std::size_t>(item.row)];
    if (args.common.json) {
      std::cout << JsonObject().str("file", item.file).raw("neighbours", neighbours_json(catalog, ns)).text() << '\n';
    } else {
      std::cout << item.file << '\n';
      for (std::size_t r = 0; r < ns.size(); ++r)
        std::printf("  %2zu. %.4f  id %-8lld %-12s %s\n", r + 1, ns[r].score, static_cast<long long>(ns[r].id),
                    catalog.class_name(catalog.label(ns[r].row)).c_str(), catalog.path(ns[r].row).c_str());
    }
    if (args.grid) {
      report::GridQuery q{fs::path(item.file).filename().string(), read_image(item.file),
                          inputs.seen[static_cast<std::size_t>(item.row)], {}};
      for (const Neighbour& n : ns)
        q.neighbours.push_back({item_image(catalog, n.row, model, train), catalog.class_name(catalog.label(n.row)), n.score});
      grid.push_back(std::move(q));
    }
  }
  if (args.grid && !grid.empty()) {
    if (args.grid->has_parent_path()) fs::create_directories(args.grid->parent_path());
    write_png(*args.grid, report::draw_neighbour_grid(grid).image());
    if (!args.common.json) std::cout << "Grid written to " << args.grid->string() << '\n';
  }
  return failures == 0 ? 0 : 1;
}

int evaluate(const Args& args, const Catalog& catalog, const Sequential& model) {
  if (!needs_training_images(catalog))
    throw UsageError("--evaluate needs a catalog of the Fashion-MNIST training set (loom index --data); " +
                     args.catalog->string() + " holds image files");
  const std::string dir = fashion_mnist::find_data_dir(args.data).string();
  Dataset test = fashion_mnist::load_test(dir);
  if (args.limit) test = test.head(std::min(*args.limit, test.size()));
  const Dataset train = fashion_mnist::load_train(dir);
  for (const std::int64_t id : catalog.ids())
    if (id < 0 || id >= train.size())
      throw DataError(args.catalog->string() + ": item id " + std::to_string(id) +
                      " is not an index into the Fashion-MNIST training set of " + dir);
  const SearchOptions options{.k = std::min<Index>(10, catalog.size())};
  const std::vector<Label> truth(test.labels().begin(), test.labels().end());

  const auto t0 = Progress::Clock::now();
  const Tensor queries = model.embed(test, catalog.info().layer);
  const double embed_seconds = Progress::seconds_since(t0);
  const auto t1 = Progress::Clock::now();
  const SearchResults found = make_index(catalog, args)->search(queries, options);
  const double search_seconds = Progress::seconds_since(t1);
  const RetrievalScores learnt = score_retrieval(truth, found, catalog, 10);

  CatalogInfo raw_info{.dim = train.shape().size(), .class_names = catalog.info().class_names};
  Catalog raw(raw_info);
  raw.add(pixel_vectors(train, catalog.ids()), catalog.ids(), catalog.labels());
  const RetrievalScores pixels = score_retrieval(truth, ExactSearch(raw).search(pixel_vectors(test), options), raw, 10);

  if (args.common.json) {
    std::cout << JsonObject()
                     .integer("queries", learnt.queries)
                     .integer("catalog_items", catalog.size())
                     .str("search", args.approximate ? args.index.value_or("hnsw") : "exact")
                     .raw("embedding", scores_json(learnt))
                     .raw("raw_pixels", scores_json(pixels))
                     .num("embed_seconds", embed_seconds)
                     .num("search_seconds", search_seconds)
                     .text()
              << '\n';
  } else {
    std::printf("%lld test images against %lld catalog items (a neighbour is relevant when it has the query's class)\n",
                static_cast<long long>(learnt.queries), static_cast<long long>(catalog.size()));
    std::printf("               precision@1  precision@10  mAP@10\n");
    std::printf("  embeddings   %11.4f  %12.4f  %6.4f\n", learnt.precision_at_1, learnt.precision_at_k, learnt.map_at_k);
    std::printf("  raw pixels   %11.4f  %12.4f  %6.4f\n", pixels.precision_at_1, pixels.precision_at_k, pixels.map_at_k);
  }
  return 0;
}

}  // namespace

int search_command(int argc, char** argv) {
  const Args args = parse(argc, argv);
  args.common.apply_threads();
  const std::string name = args.catalog->string();
  const Catalog catalog = load_catalog(*args.catalog);
  if (catalog.empty()) throw DataError(name + ": the catalog has no items");
  const Sequential model = args.model ? load_model(*args.model) : catalog_model(catalog, name);
  if (args.model) check_same_model(catalog, model, name, args.model->string());
  return args.evaluate ? evaluate(args, catalog, model) : search_images(args, catalog, model);
}

}  // namespace loom::tool
