// The textbook Keras Fashion-MNIST CNN, line for line in loom:
//
//   model = keras.Sequential([
//       layers.Conv2D(32, (3, 3), activation="relu", input_shape=(28, 28, 1)),
//       layers.MaxPooling2D((2, 2)),
//       layers.Conv2D(64, (3, 3), activation="relu"),
//       layers.MaxPooling2D((2, 2)),
//       layers.Flatten(),
//       layers.Dense(128, activation="relu"),
//       layers.Dense(10, activation="softmax")])
//   model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
//   model.summary()
//   model.fit(x_train, y_train, epochs=5, batch_size=32)
//   test_loss, test_acc = model.evaluate(x_test, y_test)
//
// Prints the summary and the test accuracy on stdout, the progress on stderr,
// and ends with one JSON line on stdout for CI systems.
//
//   fashion_mnist_cnn [--epochs 5] [--batch-size 32] [--limit N] [--data DIR]
//                     [--seed 7] [--threads N] [--verbose 0|1|2] [--distributed]
//
// With --distributed, under mpirun -np N, the ranks train data-parallel
// (docs/distributed.md) and rank 0 alone prints.

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <optional>
#include <string>

#include "loom/loom.hpp"
#include "loom/training/command_line.hpp"

namespace {

const std::string kUsage = std::string(
    "usage: fashion_mnist_cnn [options]\n"
    "Trains the Keras Fashion-MNIST CNN and prints the test accuracy, then one JSON line.\n") +
    loom::cli::TrainingFlags::help;

loom::cli::TrainingFlags parse(int argc, char** argv) {
  loom::cli::TrainingFlags flags;
  loom::cli::parse_args(
      argc, argv, 1, kUsage, {"--distributed"},
      [&](const std::string& flag, const char* v) { return flags.take(flag, v); },
      [&](const std::string& arg) { throw loom::UsageError("unexpected argument \"" + arg + "\"\n" + kUsage); });
  return flags;
}

int run(const loom::cli::TrainingFlags& args) {
  using namespace loom;
  const auto world = args.connect();  // nullptr without --distributed
  const int ranks = world ? world->size() : 1;
  const bool leader = !world || world->rank() == 0;
  const auto [dir, train, test] = args.load();
  if (leader)
    std::cout << "Fashion-MNIST from " << dir.string() << ": " << train.size() << " training and " << test.size()
              << " test images, " << threads() << " threads" << (world ? " per rank, " + std::to_string(ranks) + " ranks" : "")
              << "\n";

  Sequential model(Shape{28, 28, 1}, args.seed);
  model.add(Conv2D({.filters = 32, .kernel = 3, .activation = Activation::ReLU}));
  model.add(MaxPool2D({.pool = 2}));
  model.add(Conv2D({.filters = 64, .kernel = 3, .activation = Activation::ReLU}));
  model.add(MaxPool2D({.pool = 2}));
  model.add(Flatten());
  model.add(Dense({.units = 128, .activation = Activation::ReLU}));
  model.add(Dense({.units = 10, .activation = Activation::Softmax}));
  model.compile(Adam(), SparseCategoricalCrossentropy(), {"accuracy"});
  if (leader) model.summary();

  const auto t0 = std::chrono::steady_clock::now();
  const History history = model.fit(train, {.epochs = args.epochs, .batch_size = args.batch_size, .seed = args.seed,
                                            .verbose = args.verbose, .collective = world.get()});
  const double train_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (!leader) return 0;  // every rank holds the same model; rank 0 reports

  const Evaluation e = model.evaluate(test);
  std::printf("Test accuracy: %.4f, test loss: %.4f\n", e.accuracy, e.loss);
  const double images = static_cast<double>(train.size()) * static_cast<double>(history.epochs.size());
  std::printf(
      "{\"test_accuracy\": %.4f, \"test_loss\": %.4f, \"params\": %lld, \"epochs\": %d, \"train_seconds\": %.2f, "
      "\"train_images_per_second\": %.0f, \"ranks\": %d}\n",
      e.accuracy, e.loss, static_cast<long long>(model.param_count()), args.epochs, train_seconds,
      images / train_seconds, ranks);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return loom::cli::run_main("fashion_mnist_cnn", [&] { return run(parse(argc, argv)); });
}
