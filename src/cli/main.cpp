// loom: train the Fashion-MNIST CNN, classify image files with a saved model,
// evaluate a model with a report, and search a catalog for similar images.
// `loom COMMAND --help` for each command;
// docs/loom-tool.md for the whole tool.

#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>

#include "commands.hpp"
#include "loom/cli.hpp"
#include "loom/data/fashion_mnist.hpp"
#include "loom/error.hpp"
#include "loom/report/class_names.hpp"

namespace loom::tool {

std::filesystem::path class_names_path(const std::filesystem::path& model_file) {
  std::filesystem::path p = model_file;
  return p.replace_extension(".classes.txt");
}

std::vector<std::string> class_names_for(const Sequential& model, const std::filesystem::path& model_file) {
  if (const auto path = class_names_path(model_file); std::filesystem::exists(path)) {
    std::ifstream in(path);
    std::vector<std::string> names;
    for (std::string line; std::getline(in, line);) names.push_back(line);
    if (static_cast<Index>(names.size()) != model.num_classes())
      throw DataError(path.string() + " holds " + std::to_string(names.size()) + " class names, but " +
                      model_file.string() + " has " + std::to_string(model.num_classes()) + " classes");
    return names;
  }
  if (model.num_classes() == static_cast<Index>(fashion_mnist::class_names.size()))
    return to_class_names(fashion_mnist::class_names);
  return class_names_or_numbers({}, model.num_classes());
}

}  // namespace loom::tool

namespace {

const char* kUsage =
    "usage: loom COMMAND [options]\n"
    "Trains and uses CNNs on Fashion-MNIST-style images.\n"
    "\n"
    "commands:\n"
    "  train      train the Fashion-MNIST CNN and save the model and its history\n"
    "  predict    classify image files (PNG, JPEG, BMP, GIF, PGM, ...) with a saved model\n"
    "  evaluate   test loss, accuracy, confusion matrix and per-class metrics, with a report folder\n"
    "  index      embed the training set or a folder of photos into a catalog for visual search\n"
    "  search     find the catalog items that look like each image file\n"
    "\n"
    "`loom COMMAND --help` describes each command's options.\n";

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << kUsage;
    return 2;
  }
  const std::string command = argv[1];
  if (command == "-h" || command == "--help" || command == "help") {
    std::cout << kUsage;
    return 0;
  }
  using namespace loom::tool;
  int (*run)(int, char**) = command == "train"      ? train_command
                            : command == "predict"  ? predict_command
                            : command == "evaluate" ? evaluate_command
                            : command == "index"    ? index_command
                            : command == "search"   ? search_command
                                                    : nullptr;
  if (!run) {
    std::cerr << "loom: unknown command \"" << command << "\"\n\n" << kUsage;
    return 2;
  }
  return loom::cli::run_main("loom " + command, [&] { return run(argc - 1, argv + 1); });
}
