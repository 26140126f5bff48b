#pragma once
// The loom tool's subcommands. Each parses its own arguments (argv[0] is the
// subcommand's name), prints what it did, and returns the exit status:
// 0 success, 1 a failure (bad file, bad data), 2 a usage error.

#include <filesystem>
#include <optional>
#include <string>

#include "loom/cli.hpp"
#include "loom/data/dataset.hpp"
#include "loom/sequential.hpp"
#include "loom/threads.hpp"

namespace loom::tool {

int train_command(int argc, char** argv);
int predict_command(int argc, char** argv);
int evaluate_command(int argc, char** argv);
int index_command(int argc, char** argv);
int search_command(int argc, char** argv);

/// --threads N and --json, as predict and evaluate take them (train's
/// --threads comes with cli::TrainingFlags).
struct ThreadsAndJson {
  std::optional<int> threads;
  bool json = false;

  /// Takes flag when it is one of these; false when it is not.
  bool take(const std::string& flag, const char* v) {
    if (flag == "--threads") threads = cli::parse_int<int>(flag, v, 1);
    else if (flag == "--json") json = true;
    else return false;
    return true;
  }
  void apply_threads() const {
    if (threads) set_threads(*threads);
  }
};

/// Where loom train --images writes a model's class names, one per line, as
/// the model file has no place for them: model.loom -> model.classes.txt.
std::filesystem::path class_names_path(const std::filesystem::path& model_file);

/// The class names of a model: those in class_names_path(model_file) when
/// that file exists (DataError when it does not hold one name per class),
/// else Fashion-MNIST's for a 10-class model, else "0", "1", ...
std::vector<std::string> class_names_for(const Sequential& model, const std::filesystem::path& model_file);

}  // namespace loom::tool
