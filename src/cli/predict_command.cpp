// loom predict: classifies image files with a saved model. Each image is
// converted the way Fashion-MNIST was made (loom::fashion_mnist::preprocess,
// docs/image-preprocessing.md) and the top classes are printed.

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <numeric>
#include <optional>
#include <string>
#include <vector>

#include "commands.hpp"
#include "image_inputs.hpp"
#include "loom/io/json.hpp"
#include "loom/cli.hpp"
#include "loom/io/model_file.hpp"

namespace loom::tool {
namespace {

namespace fs = std::filesystem;

const char* kUsage =
    "usage: loom predict MODEL IMAGE... [options]\n"
    "Classifies image files (PNG, JPEG, BMP, GIF, PGM, ... of any size, colour or grey, garment\n"
    "on a light or a dark background) with a saved model, and prints the top classes of each.\n"
    "Each image is converted as Fashion-MNIST's were: grey, garment light on dark (inverted when\n"
    "the background is light), cropped to the garment, fitted into 28x28 and centred.\n"
    "  --top N            how many classes to print per image (default 3)\n"
    "  --save-input DIR   write the 28x28 image the model saw, as DIR/<image file name>.input.png\n"
    "  --threads N        threads (default: all cores)\n"
    "  --json             one JSON object per image per line:\n"
    "                     {\"file\", \"label\", \"class\", \"probability\", \"top3\" (\"topN\" for --top N):\n"
    "                     [{\"label\", \"class\", \"probability\"}, ...]}; an image that cannot be\n"
    "                     read gives {\"file\", \"error\"}\n"
    "Exit status: 0 when every image was classified, 1 when some could not be read.\n";

struct Args {
  std::vector<std::string> paths;  // the model, then the images
  Index top = 3;
  std::optional<fs::path> save_input;
  ThreadsAndJson common;
};

Args parse(int argc, char** argv) {
  Args a;
  cli::parse_args(
      argc, argv, 1, kUsage, {"--json"},
      [&](const std::string& flag, const char* v) {
        if (flag == "--top") a.top = cli::parse_int(flag, v, 1);
        else if (flag == "--save-input") a.save_input = v;
        else return a.common.take(flag, v);
        return true;
      },
      [&](const std::string& arg) { a.paths.push_back(arg); });
  if (a.paths.size() < 2) throw UsageError(std::string("give a model and at least one image\n") + kUsage);
  return a;
}

struct Ranked {
  Label label;
  float probability;
};

// The classes of row i of probabilities (N, 1, 1, K), most probable first.
std::vector<Ranked> ranked(const Tensor& p, Index i, Index top) {
  const Index k = p.dimension(3);
  std::vector<Ranked> r(static_cast<std::size_t>(k));
  for (Index c = 0; c < k; ++c) r[static_cast<std::size_t>(c)] = {static_cast<Label>(c), p(i, 0, 0, c)};
  std::stable_sort(r.begin(), r.end(), [](const Ranked& a, const Ranked& b) { return a.probability > b.probability; });
  r.resize(static_cast<std::size_t>(std::min(top, k)));
  return r;
}

}  // namespace

int predict_command(int argc, char** argv) {
  const Args args = parse(argc, argv);
  args.common.apply_threads();
  const Sequential model = load_model(args.paths[0]);
  check_takes_images(model, args.paths[0], "predict");
  const std::vector<std::string> names = class_names_for(model, args.paths[0]);

  // Read and convert every image first; one predict call then classifies them all.
  const ImageInputs inputs =
      read_image_inputs(std::span(args.paths).subspan(1), model, args.save_input);
  const Tensor p = inputs.seen.empty() ? Tensor() : model.predict(inputs.batch());

  int failures = 0;
  const auto name = [&](Label c) { return names[static_cast<std::size_t>(c)]; };
  for (const ImageInputs::Item& item : inputs.items) {  // in the order given
    if (item.row < 0) {
      ++failures;
      std::cerr << "loom predict: " << item.error << '\n';
      if (args.common.json) std::cout << JsonObject().str("file", item.file).str("error", item.error).text() << '\n';
      continue;
    }
    const std::vector<Ranked> top = ranked(p, item.row, args.top);
    if (args.common.json) {
      const std::string list = json_array(top, [&](const Ranked& r) {
        return JsonObject().integer("label", r.label).str("class", name(r.label)).num("probability", r.probability).text();
      });
      std::cout << JsonObject()
                       .str("file", item.file)
                       .integer("label", top[0].label)
                       .str("class", name(top[0].label))
                       .num("probability", top[0].probability)
                       .raw("top" + std::to_string(args.top), list)
                       .text()
                << '\n';
    } else {
      std::cout << item.file << '\n';
      for (std::size_t r = 0; r < top.size(); ++r)
        std::printf("  %zu. %-12s %6.2f%%\n", r + 1, name(top[r].label).c_str(), 100.0 * top[r].probability);
    }
  }
  return failures == 0 ? 0 : 1;
}

}  // namespace loom::tool
