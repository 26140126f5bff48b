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
// Label smoothing (label_smoothing = e in [0, 1), as Keras's categorical
// cross-entropy): the target of a sample of class y over K classes is
// t = (1 - e) onehot(y) + e / K, and the loss is -sum_c t_c log p_c:
//   fused:          L = logsumexp(z) - (1 - e) z_y - (e / K) sum_c z_c,  dL/dz = (softmax(z) - t) / N
//   probabilities:  L = -sum_c t_c log(clip(p_c)),                       dL/dp_c = -t_c / (N p_c)
// As in Keras, the smoothed loss is the loss everywhere: fit, val_loss and
// evaluate report it (a model cannot reach 0; its floor is the entropy of t).
// Accuracy is unaffected.
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
  bool from_logits = false;     // the model's output is logits, not probabilities
  float label_smoothing = 0.0f;  // in [0, 1)
};

class SparseCategoricalCrossentropy {
 public:
  static constexpr float kEpsilon = 1e-7f;

  explicit SparseCategoricalCrossentropy(SparseCategoricalCrossentropyOptions o = {}) : o_(o) {
    check_smoothing(o.label_smoothing);
  }
  bool from_logits() const { return o_.from_logits; }
  float label_smoothing() const { return o_.label_smoothing; }

  /// Scores logits z (N, K) against labels, smoothed by `smoothing` (checked as
  /// label_smoothing is); when dz is given, writes dL/dz = (softmax(z) - t) / N
  /// for the batch mean.
  static BatchScore from_logits(const Tensor& z, std::span<const Label> labels, Tensor* dz = nullptr,
                                float smoothing = 0.0f) {
    check_smoothing(smoothing);
    const Index n = z.dimension(0), k = z.dimension(3);
    check_labels(labels, n, k);
    if (dz) resize_like(*dz, z);
    BatchScore score;
    const float inv_n = 1.0f / static_cast<float>(n);
    const Target t(smoothing, k);
    for (Index i = 0; i < n; ++i) {
      const float* zi = z.data() + i * k;
      const Index best = std::max_element(zi, zi + k) - zi;
      const float m = zi[best];
      double sum = 0.0, z_sum = 0.0;
      for (Index c = 0; c < k; ++c) sum += std::exp(static_cast<double>(zi[c] - m));
      if (smoothing > 0.0f)
        for (Index c = 0; c < k; ++c) z_sum += zi[c];
      // With no smoothing: log(sum) + m - z_y, the bits of the plain loss.
      score.loss_sum += std::log(sum) + m - t.on * zi[labels[i]] - t.off * z_sum;
      score.correct += best == labels[i];
      if (dz) {
        float* d = dz->data() + i * k;
        const double inv_sum = 1.0 / sum;
        for (Index c = 0; c < k; ++c)
          d[c] = (static_cast<float>(std::exp(static_cast<double>(zi[c] - m)) * inv_sum) - t.of(c, labels[i])) * inv_n;
      }
    }
    return score;
  }

  /// Scores probabilities p (N, K) against labels, smoothed by `smoothing`
  /// (checked as label_smoothing is); when dp is given, writes dL/dp (zero
  /// where the target is, and where clipping holds p constant).
  static BatchScore from_probabilities(const Tensor& p, std::span<const Label> labels, Tensor* dp = nullptr,
                                       float smoothing = 0.0f) {
    check_smoothing(smoothing);
    const Index n = p.dimension(0), k = p.dimension(3);
    check_labels(labels, n, k);
    if (dp) {
      resize_like(*dp, p);
      dp->setZero();
    }
    BatchScore score;
    const Target t(smoothing, k);
    for (Index i = 0; i < n; ++i) {
      const float* pi = p.data() + i * k;
      score.correct += std::max_element(pi, pi + k) - pi == labels[i];
      // Without smoothing only the label's term: every other target is 0.
      for (Index c = smoothing > 0.0f ? 0 : labels[i]; c < (smoothing > 0.0f ? k : labels[i] + 1); ++c) {
        const float clipped = std::clamp(pi[c], kEpsilon, 1.0f - kEpsilon);
        score.loss_sum += -t.loss_weight(c, labels[i]) * std::log(static_cast<double>(clipped));
        if (dp && clipped == pi[c]) dp->data()[i * k + c] = -t.of(c, labels[i]) / (static_cast<float>(n) * pi[c]);
      }
    }
    return score;
  }

  /// The loss's own scoring: logits or probabilities, with this loss's smoothing.
  BatchScore score_logits(const Tensor& z, std::span<const Label> labels, Tensor* dz = nullptr) const {
    return from_logits(z, labels, dz, o_.label_smoothing);
  }
  BatchScore score_probabilities(const Tensor& p, std::span<const Label> labels, Tensor* dp = nullptr) const {
    return from_probabilities(p, labels, dp, o_.label_smoothing);
  }

  /// A label smoothing in [0, 1) (NaN is not), else UsageError naming it and the value.
  static void check_smoothing(float smoothing) {
    if (!(smoothing >= 0.0f && smoothing < 1.0f))
      throw UsageError("SparseCategoricalCrossentropy: label_smoothing must be in [0, 1), got " +
                       detail::option_value_text(smoothing));
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
  // The smoothed target: `on` for the label, `off` added for every class;
  // in double for the loss, in float for the gradient. Without smoothing
  // they are exactly 1 and 0, so the plain loss keeps its bits.
  struct Target {
    double on, off;
    Target(float smoothing, Index k) : on(1.0 - smoothing), off(double{smoothing} / static_cast<double>(k)) {}
    double loss_weight(Index c, Label y) const { return (c == y ? on : 0.0) + off; }
    float of(Index c, Label y) const { return static_cast<float>(loss_weight(c, y)); }
  };

  SparseCategoricalCrossentropyOptions o_;
};

}  // namespace loom
