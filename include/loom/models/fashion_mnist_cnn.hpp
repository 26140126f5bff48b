#pragma once
// The seed model: the textbook Keras Fashion-MNIST CNN, compiled as Keras
// compiles it (Adam with its defaults, sparse categorical cross-entropy,
// accuracy). 225,034 parameters. One definition for the tests, benchmarks and
// tools; examples/fashion_mnist_cnn.cpp spells the same layers out line by
// line, as the Keras program does.
//
// Thread safety: every call builds a new model; safe from many threads.

#include <cstdint>

#include "loom/layers/conv2d.hpp"
#include "loom/layers/dense.hpp"
#include "loom/layers/flatten.hpp"
#include "loom/layers/maxpool2d.hpp"
#include "loom/loss.hpp"
#include "loom/optimizers/adam.hpp"
#include "loom/sequential.hpp"

namespace loom::models {

/// num_classes: the output's width (a folder of images' class count, loom train --images).
inline Sequential fashion_mnist_cnn(std::uint64_t seed, Index num_classes) {
  Sequential model(Shape{28, 28, 1}, seed);
  model.add(Conv2D({.filters = 32, .kernel = 3, .activation = Activation::ReLU}));
  model.add(MaxPool2D({.pool = 2}));
  model.add(Conv2D({.filters = 64, .kernel = 3, .activation = Activation::ReLU}));
  model.add(MaxPool2D({.pool = 2}));
  model.add(Flatten());
  model.add(Dense({.units = 128, .activation = Activation::ReLU}));
  model.add(Dense({.units = num_classes, .activation = Activation::Softmax}));
  model.compile(Adam(), SparseCategoricalCrossentropy(), {"accuracy"});
  return model;
}

/// Fashion-MNIST's 10 classes. (An overload, not a default argument: a
/// function of the seed alone is what the benchmark suite's model table takes.)
inline Sequential fashion_mnist_cnn(std::uint64_t seed) { return fashion_mnist_cnn(seed, 10); }

}  // namespace loom::models
