#pragma once
// Sparse categorical cross-entropy: integer labels, one row of K class scores
// per sample (output shape (K)). The loss of a batch is the mean over samples.
//
// Two paths, chosen by Sequential::compile:
// - fused with a final softmax (the usual case): the loss reads the logits z
//   and uses  L = mean(logsumexp(z) - z_y),  dL/dz = (softmax(z) - onehot) / N,
//   which stays finite however confident the model is;
// - on probabilities p (a model that does not end in softmax but outputs
//   probabilities some other way): L = mean(-log(clip(p_y, eps, 1 - eps))),
//   as Keras, with eps = 1e-7;
// - from_logits = true: the model's output is z itself, same as the fused path.
// fit's loss comes from the logits (exact); evaluate and val_loss score the
// probabilities that predict returns, clipped as Keras does. The two agree
// unless a prediction gives its true class less than 1e-7.
//
// Thread safety: stateless; safe from many threads.

#include <algorithm>
#include <cmath>
#include <span>
#include <string>

#include "loom/data/samples.hpp"
#include "loom/error.hpp"
#include "loom/tensor.hpp"

namespace loom {

/// Sum of per-sample losses and number of correct predictions of a batch.
struct BatchScore {
  double loss_sum = 0.0;
  Index correct = 0;
};

struct SparseCategoricalCrossentropyOptions {
  bool from_logits = false;  // the model's output is logits, not probabilities
};

class SparseCategoricalCrossentropy {
 public:
  static constexpr float kEpsilon = 1e-7f;

  explicit SparseCategoricalCrossentropy(SparseCategoricalCrossentropyOptions o = {}) : o_(o) {}
  bool from_logits() const { return o_.from_logits; }

  /// Scores logits z (N, K) against labels; when dz is given, writes
  /// dL/dz = (softmax(z) - onehot) / N for the batch mean.
  static BatchScore from_logits(const Tensor& z, std::span<const Label> labels, Tensor* dz = nullptr) {
    const Index n = z.dimension(0), k = z.dimension(3);
    check_labels(labels, n, k);
    if (dz) resize_like(*dz, z);
    BatchScore score;
    const float inv_n = 1.0f / static_cast<float>(n);
    for (Index i = 0; i < n; ++i) {
      const float* zi = z.data() + i * k;
      const Index best = std::max_element(zi, zi + k) - zi;
      const float m = zi[best];
      double sum = 0.0;
      for (Index c = 0; c < k; ++c) sum += std::exp(static_cast<double>(zi[c] - m));
      score.loss_sum += std::log(sum) + m - zi[labels[i]];
      score.correct += best == labels[i];
      if (dz) {
        float* d = dz->data() + i * k;
        const double inv_sum = 1.0 / sum;
        for (Index c = 0; c < k; ++c)
          d[c] = (static_cast<float>(std::exp(static_cast<double>(zi[c] - m)) * inv_sum) - (c == labels[i])) * inv_n;
      }
    }
    return score;
  }

  /// Scores probabilities p (N, K) against labels; when dp is given, writes
  /// dL/dp (zero outside the label, and where clipping holds p constant).
  static BatchScore from_probabilities(const Tensor& p, std::span<const Label> labels, Tensor* dp = nullptr) {
    const Index n = p.dimension(0), k = p.dimension(3);
    check_labels(labels, n, k);
    if (dp) {
      resize_like(*dp, p);
      dp->setZero();
    }
    BatchScore score;
    for (Index i = 0; i < n; ++i) {
      const float* pi = p.data() + i * k;
      const float py = pi[labels[i]];
      const float clipped = std::clamp(py, kEpsilon, 1.0f - kEpsilon);
      score.loss_sum += -std::log(static_cast<double>(clipped));
      score.correct += std::max_element(pi, pi + k) - pi == labels[i];
      if (dp && clipped == py) dp->data()[i * k + labels[i]] = -1.0f / (static_cast<float>(n) * py);
    }
    return score;
  }

  /// Labels must name one of the k classes: a clear error instead of reading past a row.
  static void check_labels(std::span<const Label> labels, Index n, Index k) {
    if (static_cast<Index>(labels.size()) != n)
      throw ShapeError("sparse categorical cross-entropy: " + std::to_string(n) + " predictions but " +
                       std::to_string(labels.size()) + " labels");
    for (Index i = 0; i < n; ++i)
      if (labels[i] < 0 || labels[i] >= k)
        throw DataError("sparse categorical cross-entropy: label " + std::to_string(labels[i]) + " of sample " +
                        std::to_string(i) + " in the batch is outside the model's " + std::to_string(k) +
                        " classes [0, " + std::to_string(k - 1) + "]");
  }

 private:
  SparseCategoricalCrossentropyOptions o_;
};

}  // namespace loom
