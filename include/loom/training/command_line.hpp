#pragma once
// The command-line flags of programs that train the Fashion-MNIST CNN (the
// example, `loom train`), defined once: their help text, their parsing and
// loading the data they name.
//
//   cli::TrainingFlags t;
//   cli::parse_args(argc, argv, 1, usage, {"--distributed"},   // the one switch (flag without a value)
//                   [&](const std::string& flag, const char* v) { return t.take(flag, v); }, ...);
//   const auto world = t.connect();            // with --distributed: MPI, threads shared among a host's ranks
//   const cli::TrainingData data = t.load();   // threads set, train (first --limit images) and test loaded
//   (t.load_held_out(n): the last n of those training images in the test set's place)
//
// Thread safety: a plain value; connect() and load() set the process's thread count.

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>

#include "loom/cli.hpp"
#include "loom/data/dataset.hpp"
#include "loom/data/fashion_mnist.hpp"
#include "loom/distributed/mpi_communicator.hpp"
#include "loom/threads.hpp"

namespace loom::cli {

struct TrainingData {
  std::filesystem::path dir;  // where the files were found
  Dataset train;              // the first --limit training images, or all
  Dataset test;
};

struct TrainingFlags {
  int epochs = 5;
  Index batch_size = 32;
  std::optional<Index> limit;
  std::optional<std::string> data;
  std::uint64_t seed = 7;  // the median of a 9-seed sweep, see docs/benchmarks-history.md
  std::optional<int> threads;
  int verbose = 1;
  bool distributed = false;

  /// The flags' help, with these values as the defaults.
  std::string help() const {
    return "  --epochs N       training epochs (default " + std::to_string(epochs) + ")\n"
           "  --batch-size N   samples per batch (default " + std::to_string(batch_size) + ")\n"
           "  --limit N        train on the first N training images only\n"
           "  --data DIR       folder with the Fashion-MNIST IDX files (default: $LOOM_DATA_DIR,\n"
           "                   ./data/fashion-mnist, /usr/share/datasets/fashion-mnist)\n"
           "  --seed N         seed of weights and shuffling (default " + std::to_string(seed) + ")\n"
           "  --threads N      threads (default: all cores; with --distributed, the cores\n"
           "                   shared equally among the ranks on each host)\n"
           "  --verbose N      0 silent, 1 progress bar, 2 one line per epoch (default 1)\n"
           "  --distributed    data-parallel training over MPI, launched with mpirun -np N:\n"
           "                   --batch-size is the global batch, shared by the ranks; only\n"
           "                   rank 0 prints and writes files (docs/distributed.md)\n";
  }

  /// Takes the value of flag when it is one of these; false when it is not.
  bool take(const std::string& flag, const char* v) {
    if (flag == "--epochs") epochs = parse_int<int>(flag, v, 1);
    else if (flag == "--batch-size") batch_size = parse_int(flag, v, 1);
    else if (flag == "--limit") limit = parse_int(flag, v, 1);
    else if (flag == "--data") data = v;
    else if (flag == "--seed") seed = static_cast<std::uint64_t>(parse_int(flag, v, 0));
    else if (flag == "--threads") threads = parse_int<int>(flag, v, 1);
    else if (flag == "--verbose") {
      verbose = parse_int<int>(flag, v, 0);
      if (verbose > 2) throw UsageError("--verbose expects 0, 1 or 2, got \"" + std::string(v) + "\"");
    }
    else if (flag == "--distributed") distributed = true;
    else return false;
    return true;
  }

  /// With --distributed: joins the MPI job (UsageError in a loom built
  /// without MPI) and, unless --threads says otherwise, shares this host's
  /// cores among its ranks. Without: nullptr, nothing done.
  std::unique_ptr<distributed::MpiCommunicator> connect() const {
    if (!distributed) return nullptr;
    auto world = std::make_unique<distributed::MpiCommunicator>();
    if (!threads) {
      const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
      set_threads(std::max(1, cores / world->local_size()));
    }
    return world;
  }

  /// Sets the thread count when given, then finds and loads the data.
  TrainingData load() const {
    auto [dir, train] = load_train();
    Dataset test = fashion_mnist::load_test(dir);
    return {std::move(dir), std::move(train), std::move(test)};
  }

  /// Like load(), but the last `held` training images (of the first --limit)
  /// take the test set's place, and the test set is not read.
  TrainingData load_held_out(Index held) const {
    auto [dir, train] = load_train();
    const Index n = train.size();
    if (held <= 0 || held >= n)
      throw UsageError("--hold-out: expected 1 to " + std::to_string(n - 1) + " images (of " + std::to_string(n) +
                       " training images), got " + std::to_string(held));
    Dataset kept = train.slice(n - held, n);
    return {std::move(dir), train.head(n - held), std::move(kept)};
  }

 private:
  // The thread count set, the folder found, its first --limit training images loaded.
  std::pair<std::filesystem::path, Dataset> load_train() const {
    if (threads) set_threads(*threads);
    std::filesystem::path dir = fashion_mnist::find_data_dir(data);
    Dataset train = fashion_mnist::load_train(dir);
    if (limit) train = train.head(std::min(*limit, train.size()));
    return {std::move(dir), std::move(train)};
  }
};

}  // namespace loom::cli
