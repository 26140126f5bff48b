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
//                     [--seed 7] [--threads N] [--verbose 0|1|2]

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <optional>
#include <string>

#include "loom/cli.hpp"
#include "loom/loom.hpp"

namespace {

struct Args {
  int epochs = 5;
  loom::Index batch_size = 32;
  std::optional<loom::Index> limit;
  std::optional<std::string> data;
  std::uint64_t seed = 7;  // the median of a 9-seed sweep, see docs/benchmarks.md
  std::optional<int> threads;
  int verbose = 1;
};

const char* kUsage =
    "usage: fashion_mnist_cnn [options]\n"
    "Trains the Keras Fashion-MNIST CNN and prints the test accuracy, then one JSON line.\n"
    "  --epochs N       training epochs (default 5)\n"
    "  --batch-size N   samples per batch (default 32)\n"
    "  --limit N        train on the first N training images only\n"
    "  --data DIR       folder with the Fashion-MNIST IDX files (default: $LOOM_DATA_DIR,\n"
    "                   ./data/fashion-mnist, /usr/share/datasets/fashion-mnist)\n"
    "  --seed N         seed of weights and shuffling (default 7)\n"
    "  --threads N      threads for training (default: all cores)\n"
    "  --verbose N      0 silent, 1 progress bar, 2 one line per epoch (default 1)\n";

Args parse(int argc, char** argv) {
  using loom::cli::parse_int;
  Args a;
  loom::cli::parse_flags(argc, argv, kUsage, [&](const std::string& flag, const char* v) {
    if (flag == "--epochs") a.epochs = static_cast<int>(parse_int(flag, v, 1));
    else if (flag == "--batch-size") a.batch_size = parse_int(flag, v, 1);
    else if (flag == "--limit") a.limit = parse_int(flag, v, 1);
    else if (flag == "--data") a.data = v;
    else if (flag == "--seed") a.seed = static_cast<std::uint64_t>(parse_int(flag, v, 0));
    else if (flag == "--threads") a.threads = static_cast<int>(parse_int(flag, v, 1));
    else if (flag == "--verbose") a.verbose = static_cast<int>(parse_int(flag, v, 0));
    else return false;
    return true;
  });
  return a;
}

int run(const Args& args) {
  using namespace loom;
  if (args.threads) set_threads(*args.threads);

  const auto dir = fashion_mnist::find_data_dir(args.data);
  Dataset train = fashion_mnist::load_train(dir);
  const Dataset test = fashion_mnist::load_test(dir);
  if (args.limit) train = train.head(std::min(*args.limit, train.size()));
  std::cout << "Fashion-MNIST from " << dir.string() << ": " << train.size() << " training and " << test.size()
            << " test images, " << threads() << " threads\n";

  Sequential model(Shape{28, 28, 1}, args.seed);
  model.add(Conv2D({.filters = 32, .kernel = 3, .activation = Activation::ReLU}));
  model.add(MaxPool2D({.pool = 2}));
  model.add(Conv2D({.filters = 64, .kernel = 3, .activation = Activation::ReLU}));
  model.add(MaxPool2D({.pool = 2}));
  model.add(Flatten());
  model.add(Dense({.units = 128, .activation = Activation::ReLU}));
  model.add(Dense({.units = 10, .activation = Activation::Softmax}));
  model.compile(Adam(), SparseCategoricalCrossentropy(), {"accuracy"});
  model.summary();

  const auto t0 = std::chrono::steady_clock::now();
  const History history =
      model.fit(train, {.epochs = args.epochs, .batch_size = args.batch_size, .seed = args.seed, .verbose = args.verbose});
  const double train_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  const Evaluation e = model.evaluate(test);
  std::printf("Test accuracy: %.4f, test loss: %.4f\n", e.accuracy, e.loss);
  const double images = static_cast<double>(train.size()) * static_cast<double>(history.epochs.size());
  std::printf(
      "{\"test_accuracy\": %.4f, \"test_loss\": %.4f, \"params\": %lld, \"epochs\": %d, \"train_seconds\": %.2f, "
      "\"train_images_per_second\": %.0f}\n",
      e.accuracy, e.loss, static_cast<long long>(model.param_count()), args.epochs, train_seconds,
      images / train_seconds);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(parse(argc, argv));
  } catch (const loom::UsageError& e) {
    std::cerr << "fashion_mnist_cnn: " << e.what() << '\n';
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "fashion_mnist_cnn: error: " << e.what() << '\n';
    return 1;
  }
}
