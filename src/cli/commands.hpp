#pragma once
// The loom tool's subcommands. Each parses its own arguments (argv[0] is the
// subcommand's name), prints what it did, and returns the exit status:
// 0 success, 1 a failure (bad file, bad data), 2 a usage error.

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
    if (flag == "--threads") threads = static_cast<int>(cli::parse_int(flag, v, 1));
    else if (flag == "--json") json = true;
    else return false;
    return true;
  }
  void apply_threads() const {
    if (threads) set_threads(*threads);
  }
};

/// The class names of a model: Fashion-MNIST's for a 10-class model, else "0", "1", ...
std::vector<std::string> class_names_for(const Sequential& model);

}  // namespace loom::tool
