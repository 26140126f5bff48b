// loom train: the Fashion-MNIST CNN (loom::models::fashion_mnist_cnn), trained
// with the example's flags, saved with its history. It checkpoints after every
// epoch, so the same command run again after a crash resumes where it stopped.

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <optional>
#include <string>

#include "commands.hpp"
#include "json.hpp"
#include "loom/cli.hpp"
#include "loom/data/fashion_mnist.hpp"
#include "loom/models/fashion_mnist_cnn.hpp"
#include "loom/threads.hpp"

namespace loom::tool {
namespace {

namespace fs = std::filesystem;

const char* kUsage =
    "usage: loom train --out MODEL [options]\n"
    "Trains the Keras Fashion-MNIST CNN and writes MODEL (weights, optimizer state and\n"
    "history) and MODEL's history as CSV beside it (model.loom -> model.history.csv).\n"
    "  --out PATH           where to write the model (required)\n"
    "  --epochs N           training epochs (default 5)\n"
    "  --batch-size N       samples per batch (default 32)\n"
    "  --limit N            train on the first N training images only\n"
    "  --data DIR           folder with the Fashion-MNIST IDX files (default: $LOOM_DATA_DIR,\n"
    "                       ./data/fashion-mnist, /usr/share/datasets/fashion-mnist)\n"
    "  --seed N             seed of weights and shuffling (default 7)\n"
    "  --threads N          threads (default: all cores)\n"
    "  --verbose N          0 silent, 1 progress bar, 2 one line per epoch (default 1)\n"
    "  --validation WHAT    scored after every epoch as val_loss/val_accuracy: \"test\" (the test\n"
    "                       set, as Keras's validation_data; the default), \"none\", or a fraction\n"
    "                       held out of the training images, e.g. 0.1\n"
    "  --checkpoint PATH    checkpoint written after every epoch (default MODEL.checkpoint, removed\n"
    "                       once MODEL is saved; \"none\" for no checkpoint). If it exists, training\n"
    "                       resumes from it, ending exactly as an uninterrupted run would\n"
    "  --json               print one JSON object on stdout instead of the text summary\n";

struct Args {
  std::optional<fs::path> out;
  int epochs = 5;
  Index batch_size = 32;
  std::optional<Index> limit;
  std::optional<std::string> data;
  std::uint64_t seed = 7;
  std::optional<int> threads;
  int verbose = 1;
  std::string validation = "test";
  std::optional<std::string> checkpoint;
  bool json = false;
};

Args parse(int argc, char** argv) {
  using cli::parse_int;
  Args a;
  cli::parse_args(
      argc, argv, 1, kUsage, {"--json"},
      [&](const std::string& flag, const char* v) {
        if (flag == "--out") a.out = v;
        else if (flag == "--epochs") a.epochs = static_cast<int>(parse_int(flag, v, 1));
        else if (flag == "--batch-size") a.batch_size = parse_int(flag, v, 1);
        else if (flag == "--limit") a.limit = parse_int(flag, v, 1);
        else if (flag == "--data") a.data = v;
        else if (flag == "--seed") a.seed = static_cast<std::uint64_t>(parse_int(flag, v, 0));
        else if (flag == "--threads") a.threads = static_cast<int>(parse_int(flag, v, 1));
        else if (flag == "--verbose") a.verbose = static_cast<int>(parse_int(flag, v, 0));
        else if (flag == "--validation") a.validation = v;
        else if (flag == "--checkpoint") a.checkpoint = v;
        else if (flag == "--json") a.json = true;
        else return false;
        return true;
      },
      [&](const std::string& arg) { throw UsageError("unexpected argument \"" + arg + "\"\n" + kUsage); });
  if (!a.out) throw UsageError(std::string("--out PATH is required\n") + kUsage);
  return a;
}

double parse_fraction(const std::string& v) {
  char* end = nullptr;
  const double f = std::strtod(v.c_str(), &end);
  if (end == v.c_str() || *end != '\0' || !(f > 0.0 && f < 1.0))
    throw UsageError("--validation expects \"test\", \"none\" or a fraction in (0, 1), got \"" + v + "\"");
  return f;
}

/// model.loom -> model.history.csv
fs::path history_csv_path(const fs::path& model) {
  fs::path p = model;
  return p.replace_extension(".history.csv");
}

}  // namespace

int train_command(int argc, char** argv) {
  const Args args = parse(argc, argv);
  if (args.threads) set_threads(*args.threads);
  std::ostream& text = args.json ? std::cerr : std::cout;  // stdout holds only the JSON with --json

  const fs::path dir = fashion_mnist::find_data_dir(args.data);
  Dataset train = fashion_mnist::load_train(dir);
  const Dataset test = fashion_mnist::load_test(dir);
  if (args.limit) train = train.head(std::min(*args.limit, train.size()));
  text << "Fashion-MNIST from " << dir.string() << ": " << train.size() << " training and " << test.size()
       << " test images, " << threads() << " threads\n";

  Sequential model = models::fashion_mnist_cnn(args.seed);
  if (!args.json) model.summary(text);

  FitOptions fit{.epochs = args.epochs, .batch_size = args.batch_size, .seed = args.seed, .verbose = args.verbose};
  if (args.validation == "test") fit.validation_data = &test;
  else if (args.validation != "none") fit.validation_split = parse_fraction(args.validation);
  const fs::path checkpoint = args.checkpoint.value_or(args.out->string() + ".checkpoint");
  if (checkpoint != "none") fit.checkpoint = checkpoint;

  const auto t0 = std::chrono::steady_clock::now();
  const History history = model.fit(train, fit);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  model.save(*args.out);
  const fs::path csv = history_csv_path(*args.out);
  history.write_csv(csv.string());
  if (!fit.checkpoint.empty()) fs::remove(fit.checkpoint);  // the model now holds all it had

  const Evaluation e = model.evaluate(test);
  if (args.json) {
    std::cout << JsonObject()
                     .str("model", args.out->string())
                     .str("history_csv", csv.string())
                     .num("test_accuracy", e.accuracy)
                     .num("test_loss", e.loss)
                     .integer("epochs", static_cast<long long>(history.epochs.size()))
                     .integer("train_images", static_cast<long long>(train.size()))
                     .integer("params", static_cast<long long>(model.param_count()))
                     .num("train_seconds", seconds, 4)
                     .integer("seed", static_cast<long long>(args.seed))
                     .text()
              << '\n';
  } else {
    std::printf("Test accuracy: %.4f, test loss: %.4f\n", e.accuracy, e.loss);
    std::printf("Saved the model to %s and its history to %s\n", args.out->c_str(), csv.c_str());
  }
  return 0;
}

}  // namespace loom::tool
