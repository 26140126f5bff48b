#pragma once
// A small problem every model test can train on in milliseconds, a small CNN
// for it, and bitwise comparisons of models and tensors.

#include <algorithm>
#include <cstring>
#include <vector>

#include "loom/layers/batch_normalization.hpp"
#include "loom/layers/conv2d.hpp"
#include "loom/layers/dense.hpp"
#include "loom/layers/flatten.hpp"
#include "loom/layers/maxpool2d.hpp"
#include "loom/layers/relu.hpp"
#include "loom/optimizers/adam.hpp"
#include "loom/random.hpp"
#include "loom/sequential.hpp"

namespace loom::testing {

// n 8x8 images; class k in 0..3 is the bright quadrant (top-left, top-right,
// bottom-left, bottom-right) over a dim, noisy background.
struct Quadrants {
  Tensor x;
  std::vector<Label> y;
};

inline Quadrants quadrants(Index n, std::uint64_t seed) {
  Random rng(seed);
  Quadrants d{Tensor(n, 8, 8, 1), std::vector<Label>(static_cast<std::size_t>(n))};
  for (Index i = 0; i < n; ++i) {
    const Label k = static_cast<Label>(rng.below(4));
    d.y[static_cast<std::size_t>(i)] = k;
    for (Index r = 0; r < 8; ++r)
      for (Index c = 0; c < 8; ++c) {
        const bool bright = (r >= 4) == (k >= 2) && (c >= 4) == (k % 2 == 1);
        d.x(i, r, c, 0) = bright ? rng.uniform(0.6f, 1.0f) : rng.uniform(0.0f, 0.3f);
      }
  }
  return d;
}

// A conv without activation, its batch normalisation and ReLU, on the quadrant images.
inline Sequential conv_bn_relu_model(std::uint64_t seed) {
  Sequential m(Shape{8, 8, 1}, seed);
  m.add(Conv2D({.filters = 4, .kernel = 3}));
  m.add(BatchNormalization());
  m.add(ReLU());
  m.add(MaxPool2D());
  m.add(Flatten());
  m.add(Dense({.units = 4, .activation = Activation::Softmax}));
  m.compile(Adam({.learning_rate = 0.01f}));
  return m;
}

// A small CNN for the quadrant problem.
inline Sequential small_cnn(std::uint64_t seed, float learning_rate = 0.01f) {
  Sequential m(Shape{8, 8, 1}, seed);
  m.add(Conv2D({.filters = 4, .kernel = 3, .activation = Activation::ReLU}));
  m.add(MaxPool2D());
  m.add(Flatten());
  m.add(Dense({.units = 4, .activation = Activation::Softmax}));
  m.compile(Adam({.learning_rate = learning_rate}));
  return m;
}

// The largest difference between two models' weights, relative to each
// tensor's largest magnitude in a (at least 1e-3): summation-order tolerance.
inline double max_relative_difference(Sequential& a, Sequential& b) {
  double worst = 0.0;
  for (std::size_t i = 0; i < a.params().size(); ++i) {
    const Eigen::VectorXf& va = a.params()[i]->value;
    const Eigen::VectorXf& vb = b.params()[i]->value;
    const double scale = std::max(1e-3, static_cast<double>(va.cwiseAbs().maxCoeff()));
    worst = std::max(worst, static_cast<double>((va - vb).cwiseAbs().maxCoeff()) / scale);
  }
  return worst;
}

inline bool same_params(Sequential& a, Sequential& b) {
  if (a.params().size() != b.params().size()) return false;
  for (std::size_t i = 0; i < a.params().size(); ++i) {
    const Eigen::VectorXf& va = a.params()[i]->value;
    const Eigen::VectorXf& vb = b.params()[i]->value;
    if (va.size() != vb.size() ||
        std::memcmp(va.data(), vb.data(), static_cast<std::size_t>(va.size()) * sizeof(float)) != 0)
      return false;
  }
  return true;
}

// The optimizers' step counts and slots (Adam's moments), bit for bit.
inline bool same_optimizer_state(const Sequential& a, const Sequential& b) {
  const Optimizer::State sa = a.optimizer().state(), sb = b.optimizer().state();
  if (sa.steps != sb.steps || sa.slots.size() != sb.slots.size()) return false;
  for (std::size_t i = 0; i < sa.slots.size(); ++i)
    if (sa.slots[i] != sb.slots[i]) return false;
  return true;
}

inline bool same_tensor(const Tensor& a, const Tensor& b) {
  return a.dimensions() == b.dimensions() &&
         std::memcmp(a.data(), b.data(), static_cast<std::size_t>(a.size()) * sizeof(float)) == 0;
}

}  // namespace loom::testing
