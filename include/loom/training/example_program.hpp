#pragma once
// The body of the Fashion-MNIST example programs (examples/fashion_mnist_cnn,
// examples/fashion_mnist_resnet): the shared flags (command_line.hpp), the
// data, the summary, fit, the test evaluation and one JSON line for CI
// systems, around the model each program builds.
//
//   int main(int argc, char** argv) {
//     return loom::cli::run_fashion_mnist_example(argc, argv, {.program = "my_example", .description = "Trains my model."},
//                                                 [](std::uint64_t seed) { return my_model(seed); });
//   }
//
// stdout: the summary, "Test accuracy: ..., test loss: ...", then
//   {"test_accuracy": ..., "test_loss": ..., "params": ..., "epochs": ...,
//    "train_seconds": ..., "train_images_per_second": ..., "ranks": ...}
// stderr: the progress. With --distributed (under mpirun) rank 0 alone prints.
// With --save FILE (or always, for an example whose round_trip is set) the
// trained model is saved, loaded back and its test predictions compared bit
// for bit with the original's; a difference fails the program (exit 1).
// With --hold-out N the last N training images are set aside and scored
// wherever the test set would be (the keys say "validation" for "test"), and
// the test set is not even read: variants of a recipe are compared on these,
// so that the test set chooses nothing.
//
// Thread safety: a program's main; sets the process's thread count.

#include <unistd.h>

#include <cctype>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "loom/cli.hpp"
#include "loom/io/json.hpp"
#include "loom/io/model_file.hpp"
#include "loom/sequential.hpp"
#include "loom/training/callback.hpp"
#include "loom/training/command_line.hpp"

namespace loom::cli {

/// What a run is: what a model whose schedule spans the run (one-cycle) needs to know.
struct RunSpec {
  std::uint64_t seed = 0;
  int epochs = 0;
  Index batch_size = 0;
  Index train_samples = 0;
  Index steps() const { return epochs * ((train_samples + batch_size - 1) / batch_size); }  // optimizer steps
};

/// Builds the (compiled) model from the run's seed.
using ModelBuilder = std::function<Sequential(std::uint64_t seed)>;
/// The same from the whole run.
using RunModelBuilder = std::function<Sequential(const RunSpec&)>;

struct ExampleOptions {
  std::string program;      // its name, for usage and errors
  std::string description;  // one line for the usage text
  bool round_trip = false;  // save, load and compare even without --save (to a temporary file)
  TrainingFlags defaults;   // the flags' defaults (epochs 5, batch 32, seed 7)
  // Flags of the program's own, with their help: flag(name, value) takes one and returns true.
  std::string extra_help;
  std::function<bool(const std::string&, const char*)> extra_flag;
  // Refuses bad values of those flags together (throws a loom::Error), once
  // all are parsed and before any data is read.
  std::function<void()> check_flags;
  // Changes fit's options before training (augmentation, callbacks).
  std::function<void(FitOptions&)> configure_fit;
  // Scores the test set after every epoch, outside the timed training (the
  // JSON line then has epoch_seconds and epoch_test_accuracy): to see when an
  // accuracy is reached. Never used to choose anything.
  bool score_each_epoch = false;
  // Also scores the test set with flip test-time augmentation (test_accuracy_flip_tta).
  bool flip_tta = false;
};

/// Saves model to path, loads it back and checks that it predicts data bit
/// for bit as model does; NumericError when not.
inline void check_round_trip(const Sequential& model, const std::filesystem::path& path, const Samples& data) {
  model.save(path);
  const Sequential back = load_model(path);
  const Tensor a = model.predict(data), b = back.predict(data);
  if (a.size() != b.size() || std::memcmp(a.data(), b.data(), static_cast<std::size_t>(a.size()) * sizeof(float)) != 0)
    throw NumericError(path.string() + ": the loaded model's predictions differ from the saved one's");
  std::printf("Saved to %s and loaded back: the %lld test predictions are bit for bit the same\n", path.string().c_str(),
              static_cast<long long>(data.size()));
}

/// The test set's accuracy after every epoch, and the time spent scoring it
/// (which the program takes out of the training time).
class EpochTestScore final : public Callback {
 public:
  explicit EpochTestScore(const Samples& test) : test_(test) {}
  void on_epoch_end(const EpochRecord&, TrainingContext& c) override {
    const auto t0 = std::chrono::steady_clock::now();
    accuracy_.push_back(c.model().evaluate(test_).accuracy);
    seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  const std::vector<double>& accuracy() const { return accuracy_; }
  double seconds() const { return seconds_; }

 private:
  const Samples& test_;
  std::vector<double> accuracy_;
  double seconds_ = 0.0;
};

inline int run_fashion_mnist_example(int argc, char** argv, const ExampleOptions& o, const RunModelBuilder& build) {
  return run_main(o.program, [&] {
    TrainingFlags args = o.defaults;
    const std::string usage = "usage: " + o.program + " [options]\n" + o.description + "\n" + args.help() +
                              o.extra_help +
                              "  --save FILE      save the trained model there, load it back and compare its\n"
                              "                   predictions bit for bit" +
                              (o.round_trip ? " (default: a temporary file)\n" : "\n") +
                              "  --hold-out N     train on all but the last N training images and score those\n"
                              "                   instead of the test set, which is not read (to compare variants)\n";
    std::optional<std::filesystem::path> save;
    std::optional<Index> hold_out;
    parse_args(
        argc, argv, 1, usage, {"--distributed"},
        [&](const std::string& flag, const char* v) {
          if (flag == "--save") {
            save = v;
            return true;
          }
          if (flag == "--hold-out") {  // not a TrainingFlags flag: `loom train` has its own --validation
            hold_out = parse_int(flag, v, 1);
            return true;
          }
          return args.take(flag, v) || (o.extra_flag && o.extra_flag(flag, v));
        },
        [&](const std::string& arg) { throw UsageError("unexpected argument \"" + arg + "\"\n" + usage); });
    if (o.check_flags) o.check_flags();
    if (save) check_writable(*save);  // before the training, not after it

    const auto world = args.connect();  // nullptr without --distributed
    const int ranks = world ? world->size() : 1;
    const bool leader = !world || world->rank() == 0;
    const auto [dir, train, test] = hold_out ? args.load_held_out(*hold_out) : args.load();
    const std::string scored = hold_out ? "validation" : "test";  // the set scored below, in text and keys
    if (leader)
      std::cout << "Fashion-MNIST from " << dir.string() << ": " << train.size() << " training and " << test.size()
                << " " << scored << " images, " << threads() << " threads"
                << (world ? " per rank, " + std::to_string(ranks) + " ranks" : "") << "\n";

    Sequential model = build({args.seed, args.epochs, args.batch_size, train.size()});
    if (leader) model.summary();

    FitOptions fit{.epochs = args.epochs, .batch_size = args.batch_size, .seed = args.seed, .verbose = args.verbose,
                   .collective = world.get()};
    if (o.configure_fit) o.configure_fit(fit);
    EpochTestScore scores(test);
    if (o.score_each_epoch) fit.callbacks.push_back(&scores);
    const auto t0 = std::chrono::steady_clock::now();
    const History history = model.fit(train, fit);
    const double train_seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() - scores.seconds();
    if (!leader) return 0;  // every rank holds the same model; rank 0 reports

    const Evaluation e = model.evaluate(test);
    std::printf("%c%s accuracy: %.4f, %s loss: %.4f\n", std::toupper(scored[0]), scored.c_str() + 1, e.accuracy,
                scored.c_str(), e.loss);
    const double images = static_cast<double>(train.size()) * static_cast<double>(history.epochs.size());
    std::string extra;
    if (o.flip_tta) {
      const Evaluation flipped = model.evaluate(test, 32, Tta::Flip);
      std::printf("With flip test-time augmentation: %s accuracy %.4f, %s loss %.4f\n", scored.c_str(),
                  flipped.accuracy, scored.c_str(), flipped.loss);
      char buf[64];
      std::snprintf(buf, sizeof buf, ", \"%s_accuracy_flip_tta\": %.4f", scored.c_str(), flipped.accuracy);
      extra += buf;
    }
    if (o.score_each_epoch) {
      std::vector<double> seconds;
      for (const EpochRecord& r : history.epochs) seconds.push_back(r.seconds);
      extra += ", \"epoch_seconds\": " + json_array(seconds, [](double v) { return json_number(v, 5); }) +
               ", \"epoch_" + scored + "_accuracy\": " + json_array(scores.accuracy(), [](double v) { return json_number(v, 4); });
    }
    std::printf(
        "{\"%s_accuracy\": %.4f, \"%s_loss\": %.4f, \"params\": %lld, \"epochs\": %d, \"train_seconds\": %.2f, "
        "\"train_images_per_second\": %.0f, \"ranks\": %d%s}\n",
        scored.c_str(), e.accuracy, scored.c_str(), e.loss, static_cast<long long>(model.param_count()), args.epochs, train_seconds,
        images / train_seconds, ranks, extra.c_str());
    if (save) {
      check_round_trip(model, *save, test);
    } else if (o.round_trip) {
      const std::filesystem::path temp =
          std::filesystem::temp_directory_path() / (o.program + "-" + std::to_string(::getpid()) + ".loom");
      check_round_trip(model, temp, test);
      std::filesystem::remove(temp);
    }
    return 0;
  });
}

/// The same for a model that needs only the seed.
inline int run_fashion_mnist_example(int argc, char** argv, const ExampleOptions& o, const ModelBuilder& build) {
  return run_fashion_mnist_example(argc, argv, o, RunModelBuilder([&](const RunSpec& r) { return build(r.seed); }));
}

}  // namespace loom::cli
