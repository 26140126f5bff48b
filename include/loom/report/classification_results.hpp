#pragma once
// The numbers of an evaluation from a model's predicted probabilities: test
// loss, accuracy, confusion matrix and per-class metrics, and the text that a
// command-line tool prints for them.
//
// The loss is the mean sparse categorical cross-entropy of the probabilities,
// clipped to [1e-7, 1 - 1e-7] as Keras does (loom/loss.hpp), so it equals
// Sequential::evaluate's loss for a model that ends in softmax. Accuracy is
// that of the argmax, as in evaluate.
//
// Thread safety: pure functions; safe from many threads.

#include <span>
#include <string>
#include <vector>

#include "loom/data/dataset.hpp"
#include "loom/loss.hpp"
#include "loom/report/classification_metrics.hpp"
#include "loom/report/classification_text.hpp"
#include "loom/report/confusion_matrix.hpp"
#include "loom/report/format.hpp"

namespace loom {

struct ClassificationResults {
  double loss = 0.0;             // mean cross-entropy of the true classes' probabilities
  ConfusionMatrix confusion{1};  // (K, K), rows true classes
  ClassificationMetrics metrics;

  double accuracy() const { return metrics.accuracy; }
  Index samples() const { return confusion.total(); }
  Index mistakes() const { return confusion.total() - confusion.correct(); }
};

/// Scores probabilities (N, 1, 1, K) against the N true labels.
inline ClassificationResults score_predictions(std::span<const Label> truth, const Tensor& probabilities) {
  const std::vector<Label> predicted = predicted_labels(probabilities);  // checks (N, 1, 1, K)
  if (truth.size() != predicted.size())
    throw ShapeError("score_predictions: " + std::to_string(predicted.size()) + " rows of probabilities for " +
                     std::to_string(truth.size()) + " labelled samples; predict on the same samples");
  if (truth.empty()) throw UsageError("score_predictions: no samples to score");
  ClassificationResults r;
  r.confusion = ConfusionMatrix::from_labels(truth, predicted, probabilities.dimension(3));
  r.metrics = classification_metrics(r.confusion);
  r.loss = SparseCategoricalCrossentropy::from_probabilities(probabilities, truth).loss_sum /
           static_cast<double>(truth.size());
  return r;
}

/// The labels of every sample of data, as Labels.
inline std::vector<Label> labels_of(const Dataset& data) {
  const auto bytes = data.labels();
  return {bytes.begin(), bytes.end()};
}

/// "Test loss: 0.2634 - accuracy: 0.9087 (9087/10000 correct)", a blank line, the
/// confusion table and the per-class table (loom/report/classification_text.hpp).
inline std::string format_classification_results(const ClassificationResults& r,
                                                  std::span<const std::string> names = {}, int digits = 4) {
  return report::format("Test loss: %.*f - accuracy: %.*f (%lld/%lld correct)\n\n", digits, r.loss, digits,
                        r.accuracy(), static_cast<long long>(r.confusion.correct()),
                        static_cast<long long>(r.samples())) +
         format_confusion_matrix(r.confusion, names) + "\n" + format_classification_report(r.metrics, names, digits);
}

}  // namespace loom
