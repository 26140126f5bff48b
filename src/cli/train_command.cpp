// loom train: the Fashion-MNIST CNN (loom::models::fashion_mnist_cnn), trained
// with the example's flags, saved with its history. It checkpoints after every
// epoch, so the same command run again after a crash resumes where it stopped.
// With --distributed (under mpirun), the ranks train data-parallel and rank 0
// alone prints and writes the model, its history and the checkpoints.

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <optional>
#include <string>

#include "commands.hpp"
#include "loom/io/json.hpp"
#include "loom/io/model_file.hpp"
#include "loom/models/fashion_mnist_cnn.hpp"
#include "loom/training/command_line.hpp"

namespace loom::tool {
namespace {

namespace fs = std::filesystem;

const std::string kUsage = std::string(
    "usage: loom train --out MODEL [options]\n"
    "Trains the Keras Fashion-MNIST CNN and writes MODEL (weights, optimizer state and\n"
    "history) and MODEL's history as CSV beside it (model.loom -> model.history.csv).\n"
    "  --out PATH       where to write the model (required; its directory is created)\n") +
    cli::TrainingFlags{}.help() +
    "  --validation WHAT  scored after every epoch as val_loss/val_accuracy: \"test\" (the test\n"
    "                   set, as Keras's validation_data; the default), \"none\", or a fraction\n"
    "                   held out of the training images, e.g. 0.1\n"
    "  --checkpoint PATH  checkpoint written after every epoch (default MODEL.checkpoint, removed\n"
    "                   once MODEL is saved; \"none\" for no checkpoint). If it exists, training\n"
    "                   resumes from it, ending exactly as an uninterrupted run would\n"
    "  --json           print one JSON object on stdout instead of the text summary\n";

struct Args {
  cli::TrainingFlags training;
  std::optional<fs::path> out;
  std::string validation = "test";
  std::optional<std::string> checkpoint;
  bool json = false;
};

Args parse(int argc, char** argv) {
  Args a;
  cli::parse_args(
      argc, argv, 1, kUsage, {"--json", "--distributed"},
      [&](const std::string& flag, const char* v) {
        if (a.training.take(flag, v)) return true;
        if (flag == "--out") a.out = v;
        else if (flag == "--validation") a.validation = v;
        else if (flag == "--checkpoint") a.checkpoint = v;
        else if (flag == "--json") a.json = true;
        else return false;
        return true;
      },
      [&](const std::string& arg) { throw UsageError("unexpected argument \"" + arg + "\"\n" + kUsage); });
  if (!a.out) throw UsageError("--out PATH is required\n" + kUsage);
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

/// Creates path's directory if needed and checks a file can be written there,
/// so a bad --out or --checkpoint fails now rather than after the training.
void prepare_output(const fs::path& path) {
  if (path.has_parent_path()) {
    std::error_code ec;
    fs::create_directories(path.parent_path(), ec);
    if (ec) throw IoError(path.string() + ": cannot create its directory: " + ec.message());
  }
  check_writable(path);
}

int train_command(int argc, char** argv) {
  const Args args = parse(argc, argv);
  const cli::TrainingFlags& t = args.training;
  std::ostream& text = args.json ? std::cerr : std::cout;  // stdout holds only the JSON with --json
  const fs::path checkpoint = args.checkpoint.value_or(args.out->string() + ".checkpoint");
  const auto world = t.connect();  // nullptr without --distributed
  const int ranks = world ? world->size() : 1;
  const bool leader = !world || world->rank() == 0;
  if (leader) {
    prepare_output(*args.out);
    if (checkpoint != "none") prepare_output(checkpoint);
  }
  const auto [dir, train, test] = t.load();
  if (leader)
    text << "Fashion-MNIST from " << dir.string() << ": " << train.size() << " training and " << test.size()
         << " test images, " << threads() << " threads" << (world ? " per rank, " + std::to_string(ranks) + " ranks" : "")
         << "\n";

  Sequential model = models::fashion_mnist_cnn(t.seed);
  if (leader && !args.json) model.summary(text);

  FitOptions fit{.epochs = t.epochs, .batch_size = t.batch_size, .seed = t.seed, .verbose = t.verbose};
  if (args.validation == "test") fit.validation_data = &test;
  else if (args.validation != "none") fit.validation_split = parse_fraction(args.validation);
  if (checkpoint != "none") fit.checkpoint = checkpoint;
  fit.collective = world.get();

  const auto t0 = std::chrono::steady_clock::now();
  const History history = model.fit(train, fit);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (!leader) return 0;  // every rank holds the same model; rank 0 writes it

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
                     .integer("seed", static_cast<long long>(t.seed))
                     .integer("ranks", ranks)
                     .text()
              << '\n';
  } else {
    std::printf("Test accuracy: %.4f, test loss: %.4f\n", e.accuracy, e.loss);
    std::printf("Saved the model to %s and its history to %s\n", args.out->c_str(), csv.c_str());
  }
  return 0;
}

}  // namespace loom::tool
