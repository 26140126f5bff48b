// loom index: embeds the Fashion-MNIST training set or a folder of product
// photos with a saved model and writes a catalog file for loom search
// (loom/search/, docs/visual-search.md).

#include <algorithm>
#include <filesystem>
#include <iostream>
#include <numeric>
#include <optional>
#include <string>
#include <vector>

#include "commands.hpp"
#include "image_inputs.hpp"
#include "loom/cli.hpp"
#include "loom/data/fashion_mnist.hpp"
#include "loom/io/json.hpp"
#include "loom/io/model_file.hpp"
#include "loom/search/catalog_export.hpp"
#include "loom/search/catalog_file.hpp"
#include "loom/search/catalog_model.hpp"
#include "loom/training/progress.hpp"

namespace loom::tool {
namespace {

namespace fs = std::filesystem;
using namespace loom::search;

const char* kUsage =
    "usage: loom index MODEL --out CATALOG (--data DIR | --images FOLDER) [options]\n"
    "Embeds images with a saved model and writes a catalog for `loom search`: each item's vector\n"
    "(the output of one layer, L2-normalised), id, class label and source file, and the model.\n"
    "  --out CATALOG      the catalog file to write\n"
    "  --data DIR         the Fashion-MNIST training set in DIR (default folders as loom evaluate);\n"
    "                     ids are the images' indices in it, labels its labels\n"
    "  --images FOLDER    every image file under FOLDER (sorted by path; ids 0, 1, ...), each\n"
    "                     converted as loom predict converts it; labels are the model's predicted classes\n"
    "  --limit N          only the first N training images (--data)\n"
    "  --layer NAME       the layer whose output is the embedding (default: the input of the last Dense layer)\n"
    "  --int8             store the vectors as int8 (a quarter of the memory)\n"
    "  --export DIR       also write the catalog in bulk formats for vector engines: vectors.npy,\n"
    "                     ids.npy, metadata.jsonl, items.jsonl (vector inline), vectors.fvecs\n"
    "  --threads N        threads (default: all cores)\n"
    "  --verbose 0|1      1 (default) shows a progress bar on a terminal\n"
    "  --json             print one JSON object: catalog, items, dim, layer, encoding, bytes, seconds, export\n"
    "Exit status: 0 when every image was indexed, 1 when some could not be read (the others are).\n";

struct Args {
  std::optional<fs::path> model, out, images, export_dir;
  std::optional<std::string> data, layer;
  std::optional<Index> limit;
  bool int8 = false;
  int verbose = 1;
  ThreadsAndJson common;
};

Args parse(int argc, char** argv) {
  Args a;
  cli::parse_args(
      argc, argv, 1, kUsage, {"--json", "--int8"},
      [&](const std::string& flag, const char* v) {
        if (flag == "--out") a.out = v;
        else if (flag == "--data") a.data = v;
        else if (flag == "--images") a.images = v;
        else if (flag == "--limit") a.limit = cli::parse_int(flag, v, 1);
        else if (flag == "--layer") a.layer = v;
        else if (flag == "--int8") a.int8 = true;
        else if (flag == "--export") a.export_dir = v;
        else if (flag == "--verbose") a.verbose = cli::parse_int<int>(flag, v, 0);
        else return a.common.take(flag, v);
        return true;
      },
      [&](const std::string& arg) {
        if (a.model) throw UsageError("unexpected argument \"" + arg + "\": give one model\n" + kUsage);
        a.model = arg;
      });
  if (!a.model) throw UsageError(std::string("give the model that embeds the images\n") + kUsage);
  if (!a.out) throw UsageError(std::string("give the catalog to write with --out\n") + kUsage);
  if (a.data.has_value() == a.images.has_value())
    throw UsageError(std::string("give either --data DIR or --images FOLDER\n") + kUsage);
  if (a.limit && a.images) throw UsageError(std::string("--limit goes with --data\n") + kUsage);
  if (a.verbose > 1) throw UsageError("--verbose expects 0 or 1, got " + std::to_string(a.verbose));
  return a;
}

constexpr Index kChunk = 4096;  // images embedded between progress updates

// The training set (or its first `limit` images), embedded chunk by chunk.
void index_dataset(Catalog& catalog, const Sequential& model, const Dataset& train, const std::string& layer,
                   Progress& progress) {
  progress.begin_task("Embedding " + std::to_string(train.size()) + " images", train.size());
  for (Index b = 0; b < train.size(); b += kChunk) {
    const Index e = std::min(train.size(), b + kChunk);
    const Dataset part = train.slice(b, e);
    std::vector<std::int64_t> ids(static_cast<std::size_t>(e - b));
    std::iota(ids.begin(), ids.end(), b);
    const auto labels = part.labels();
    const std::vector<Label> y(labels.begin(), labels.end());
    catalog.add(model.embed(part, layer), ids, y);
    progress.update(e);
  }
  progress.end_task();
}

// Every regular file under folder, sorted by path.
std::vector<std::string> files_under(const fs::path& folder) {
  if (!fs::is_directory(folder)) throw IoError(folder.string() + ": not a folder of images");
  std::vector<std::string> files;
  for (const auto& entry : fs::recursive_directory_iterator(folder))
    if (entry.is_regular_file()) files.push_back(entry.path().string());
  std::sort(files.begin(), files.end());
  if (files.empty()) throw DataError(folder.string() + ": the folder holds no files; expected image files to index");
  return files;
}

// The readable images of folder, labelled with the model's predicted classes. Returns how many failed.
int index_images(Catalog& catalog, const Sequential& model, const fs::path& folder, const std::string& layer,
                 Progress& progress) {
  const std::vector<std::string> files = files_under(folder);
  progress.begin_task("Embedding " + std::to_string(files.size()) + " image files", static_cast<Index>(files.size()));
  int failures = 0;
  std::int64_t next_id = 0;
  for (std::size_t b = 0; b < files.size(); b += kChunk) {
    const std::size_t e = std::min(files.size(), b + kChunk);
    const ImageInputs inputs = read_image_inputs(std::span(files).subspan(b, e - b), model);
    for (const auto& item : inputs.items)
      if (item.row < 0) {
        ++failures;
        std::cerr << "loom index: " << item.error << '\n';
      }
    if (!inputs.seen.empty()) {
      const Tensor x = inputs.batch();
      const Tensor p = model.predict(x);
      std::vector<std::int64_t> ids;
      std::vector<Label> labels;
      std::vector<std::string> paths;
      for (const auto& item : inputs.items) {
        if (item.row < 0) continue;
        ids.push_back(next_id++);
        Index best = 0;
        for (Index c = 1; c < p.dimension(3); ++c) best = p(item.row, 0, 0, c) > p(item.row, 0, 0, best) ? c : best;
        labels.push_back(static_cast<Label>(best));
        paths.push_back(item.file);
      }
      catalog.add(model.embed(x, layer), ids, labels, paths);
    }
    progress.update(static_cast<Index>(e));
  }
  progress.end_task();
  if (catalog.empty())
    throw DataError(folder.string() + ": none of its " + std::to_string(files.size()) +
                    " files could be read as an image; expected image files to index");
  return failures;
}

}  // namespace

int index_command(int argc, char** argv) {
  const Args args = parse(argc, argv);
  args.common.apply_threads();
  check_writable(*args.out);
  const Sequential model = load_model(*args.model);
  const std::string layer = args.layer.value_or("");
  Catalog catalog(catalog_info_for(model, layer, class_names_for(model, *args.model),
                                   args.int8 ? VectorEncoding::Int8 : VectorEncoding::Float32));
  Progress progress(std::cerr, args.verbose);
  const auto t0 = Progress::Clock::now();
  int failures = 0;
  if (args.data) {
    Dataset train = fashion_mnist::load_train(fashion_mnist::find_data_dir(args.data));
    if (args.limit) train = train.head(std::min(*args.limit, train.size()));
    check_takes_images(model, args.model->string(), "index");
    index_dataset(catalog, model, train, layer, progress);
  } else {
    check_takes_images(model, args.model->string(), "index");
    failures = index_images(catalog, model, *args.images, layer, progress);
  }
  const double embed_seconds = Progress::seconds_since(t0);
  save_catalog(catalog, *args.out);
  const double seconds = Progress::seconds_since(t0);
  std::vector<fs::path> exported;
  if (args.export_dir) exported = export_catalog(catalog, *args.export_dir);

  const auto bytes = fs::file_size(*args.out);
  if (args.common.json) {
    std::cout << JsonObject()
                     .str("catalog", args.out->string())
                     .integer("items", catalog.size())
                     .integer("dim", catalog.dim())
                     .str("layer", catalog.info().layer)
                     .str("encoding", encoding_name(catalog.encoding()))
                     .integer("bytes", static_cast<long long>(bytes))
                     .num("embed_seconds", embed_seconds)
                     .num("seconds", seconds)
                     .integer("unreadable", failures)
                     .raw("export", json_array(exported, [](const fs::path& p) { return json_string(p.string()); }))
                     .text()
              << '\n';
  } else {
    std::cout << "Indexed " << catalog.size() << " items (" << catalog.dim() << " values from layer "
              << catalog.info().layer << ", " << encoding_name(catalog.encoding()) << ") into " << args.out->string()
              << " (" << bytes << " bytes) in " << json_number(seconds, 3) << " s\n";
    for (const fs::path& p : exported) std::cout << "  exported " << p.string() << '\n';
  }
  return failures == 0 ? 0 : 1;
}

}  // namespace loom::tool
