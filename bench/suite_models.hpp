#pragma once
// The benchmark suite's models, one definition for the Google Benchmark cases
// (bench_suite.cpp) and the loom side of bench/suite.py (loom_suite.cpp).
// bench/suite_models.py defines the same models in PyTorch; suite.py checks
// that both sides count the same parameters.
//
//   seed   28x28x1   the Fashion-MNIST CNN (models::fashion_mnist_cnn)
//   vgg    32x32x3   conv 32, conv 32, pool, conv 64, conv 64, pool (3x3 same),
//                    Dense 256, Dense 10
//   photo  96x96x3   conv 32 5x5 stride 2 same, pool, conv 64, pool, conv 128,
//                    pool (3x3 same), Dense 128, Dense 10
//   wide   16x16x64  conv 128, conv 256, conv 256 (3x3 same), pool, Dense 10
//   odd    32x32x3   conv 24, conv 40, pool, conv 72, pool (3x3 same),
//                    Dense 100, Dense 10: channel counts not powers of two
//   mlp    784       Dense 512, Dense 512, Dense 10
//   resnet 28x28x1   the best recipe's BatchNorm ResNet (models::fashion_mnist_best:
//                    stem conv 32, basic blocks of 32, 64, 128 filters each
//                    strided 2 with a projection (2x2 average pool, 1x1
//                    conv), global average pooling,
//                    Dropout, Dense 10), trained as the recipe trains it: SGD
//                    with Nesterov momentum and decoupled weight decay
//
// Every hidden layer has ReLU, the last Dense softmax (fused into the loss in
// training, as Keras and PyTorch's cross_entropy do); Adam with Keras defaults
// but for resnet. train_batch is each model's realistic training batch.

#include <cstdint>
#include <span>
#include <string_view>

#include "loom/loom.hpp"
#include "loom/models/fashion_mnist_best.hpp"

namespace loom::bench {

struct SuiteModel {
  std::string_view name;
  Index train_batch;
  Sequential (*build)(std::uint64_t seed);
};

// Inference batch sizes of the suite.
inline constexpr Index kSuiteBatches[] = {1, 32, 64, 256};

namespace suite_detail {

inline Conv2D conv(Index filters, Index kernel = 3, Index stride = 1) {
  return Conv2D({.filters = filters, .kernel = kernel, .strides = stride, .padding = Padding::Same,
                 .activation = Activation::ReLU});
}
inline Dense hidden(Index units) { return Dense({.units = units, .activation = Activation::ReLU}); }
inline Dense classes(Index units) { return Dense({.units = units, .activation = Activation::Softmax}); }
inline void compile(Sequential& m) { m.compile(Adam(), SparseCategoricalCrossentropy(), {"accuracy"}); }

inline Sequential vgg(std::uint64_t seed) {
  Sequential m(Shape{32, 32, 3}, seed);
  m.add(conv(32));
  m.add(conv(32));
  m.add(MaxPool2D({.pool = 2}));
  m.add(conv(64));
  m.add(conv(64));
  m.add(MaxPool2D({.pool = 2}));
  m.add(Flatten());
  m.add(hidden(256));
  m.add(classes(10));
  compile(m);
  return m;
}

inline Sequential photo(std::uint64_t seed) {
  Sequential m(Shape{96, 96, 3}, seed);
  m.add(conv(32, 5, 2));
  m.add(MaxPool2D({.pool = 2}));
  m.add(conv(64));
  m.add(MaxPool2D({.pool = 2}));
  m.add(conv(128));
  m.add(MaxPool2D({.pool = 2}));
  m.add(Flatten());
  m.add(hidden(128));
  m.add(classes(10));
  compile(m);
  return m;
}

inline Sequential wide(std::uint64_t seed) {
  Sequential m(Shape{16, 16, 64}, seed);
  m.add(conv(128));
  m.add(conv(256));
  m.add(conv(256));
  m.add(MaxPool2D({.pool = 2}));
  m.add(Flatten());
  m.add(classes(10));
  compile(m);
  return m;
}

inline Sequential odd(std::uint64_t seed) {
  Sequential m(Shape{32, 32, 3}, seed);
  m.add(conv(24));
  m.add(conv(40));
  m.add(MaxPool2D({.pool = 2}));
  m.add(conv(72));
  m.add(MaxPool2D({.pool = 2}));
  m.add(Flatten());
  m.add(hidden(100));
  m.add(classes(10));
  compile(m);
  return m;
}

inline Sequential mlp(std::uint64_t seed) {
  Sequential m(Shape{784}, seed);
  m.add(hidden(512));
  m.add(hidden(512));
  m.add(classes(10));
  compile(m);
  return m;
}

// The recipe's one-cycle schedule spans its whole run on the 60,000 training
// images; a step costs the same at any point of it.
inline Sequential resnet(std::uint64_t seed) { return models::fashion_mnist_best(seed, 60000); }

}  // namespace suite_detail

inline std::span<const SuiteModel> suite_models() {
  static const SuiteModel models[] = {
      {"seed", 32, models::fashion_mnist_cnn},
      {"vgg", 64, suite_detail::vgg},
      {"photo", 32, suite_detail::photo},
      {"wide", 32, suite_detail::wide},
      {"odd", 64, suite_detail::odd},
      {"mlp", 64, suite_detail::mlp},
      {"resnet", 128, suite_detail::resnet},
  };
  return models;
}

// The model called name, or nullptr.
inline const SuiteModel* find_suite_model(std::string_view name) {
  for (const SuiteModel& m : suite_models())
    if (m.name == name) return &m;
  return nullptr;
}

}  // namespace loom::bench
