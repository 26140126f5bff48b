#pragma once
// The loom tool's subcommands. Each parses its own arguments (argv[0] is the
// subcommand's name), prints what it did, and returns the exit status:
// 0 success, 1 a failure (bad file, bad data), 2 a usage error.

#include <string>

#include "loom/data/dataset.hpp"
#include "loom/sequential.hpp"

namespace loom::tool {

int train_command(int argc, char** argv);
int predict_command(int argc, char** argv);
int evaluate_command(int argc, char** argv);

/// The class names of a model: Fashion-MNIST's for a 10-class model, else "0", "1", ...
std::vector<std::string> class_names_for(const Sequential& model);

}  // namespace loom::tool
