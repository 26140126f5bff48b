#pragma once
// ConfusionMatrix: how often each true class was predicted as each class.
// Rows are true classes and columns predicted classes, as in scikit-learn's
// confusion_matrix: count(t, p) = number of samples of class t predicted as p,
// so the diagonal holds the correct predictions, a row sums to the class's
// support and a column to how often the class was predicted.
//
// Predictions from probabilities (N, 1, 1, K), as Sequential::predict returns
// them, are the argmax of each row; a tie goes to the lowest class, as in
// numpy's argmax and in loom's accuracy.
//
// Thread safety: a plain value; const members are safe from many threads.

#include <algorithm>
#include <span>
#include <string>
#include <vector>

#include "loom/data/samples.hpp"
#include "loom/error.hpp"
#include "loom/tensor.hpp"

namespace loom {

/// The class of highest probability in each row of probabilities (N, 1, 1, K).
inline std::vector<Label> predicted_labels(const Tensor& probabilities) {
  if (probabilities.dimension(1) != 1 || probabilities.dimension(2) != 1 || probabilities.dimension(3) < 1)
    throw ShapeError("predicted_labels: expected class probabilities of dimensions (N, 1, 1, K), got " +
                     dims_string(probabilities));
  const Index n = probabilities.dimension(0), k = probabilities.dimension(3);
  std::vector<Label> out(static_cast<std::size_t>(n));
  for (Index i = 0; i < n; ++i) {
    const float* row = probabilities.data() + i * k;
    out[static_cast<std::size_t>(i)] = static_cast<Label>(std::max_element(row, row + k) - row);
  }
  return out;
}

class ConfusionMatrix {
 public:
  /// An empty matrix over classes [0, num_classes).
  explicit ConfusionMatrix(Index num_classes) : k_(num_classes) {
    if (num_classes < 1)
      throw UsageError("ConfusionMatrix: num_classes must be at least 1, got " + std::to_string(num_classes));
    counts_.assign(static_cast<std::size_t>(k_ * k_), 0);
  }

  /// Counts pairs (truth[i], predicted[i]); both must hold the same number of labels in [0, num_classes).
  static ConfusionMatrix from_labels(std::span<const Label> truth, std::span<const Label> predicted,
                                     Index num_classes) {
    if (truth.size() != predicted.size())
      throw ShapeError("ConfusionMatrix: " + std::to_string(truth.size()) + " true labels but " +
                       std::to_string(predicted.size()) + " predicted labels; expected one of each per sample");
    ConfusionMatrix m(num_classes);
    for (std::size_t i = 0; i < truth.size(); ++i) m.add(truth[i], predicted[i]);
    return m;
  }
  /// Counts truth against the argmax of probabilities (N, 1, 1, K); K classes.
  static ConfusionMatrix from_probabilities(std::span<const Label> truth, const Tensor& probabilities) {
    const std::vector<Label> predicted = predicted_labels(probabilities);
    return from_labels(truth, predicted, probabilities.dimension(3));
  }

  void add(Label truth, Label predicted) {
    check(truth, "true label");
    check(predicted, "predicted label");
    ++counts_[static_cast<std::size_t>(truth * k_ + predicted)];
  }

  Index num_classes() const { return k_; }
  /// Samples of class truth predicted as predicted.
  Index count(Label truth, Label predicted) const {
    check(truth, "true label");
    check(predicted, "predicted label");
    return counts_[static_cast<std::size_t>(truth * k_ + predicted)];
  }
  /// Samples whose true class is c (the row sum): the class's support.
  Index support(Label c) const {
    Index s = 0;
    for (Label p = 0; p < k_; ++p) s += count(c, p);
    return s;
  }
  /// Samples predicted as c (the column sum).
  Index predicted_count(Label c) const {
    Index s = 0;
    for (Label t = 0; t < k_; ++t) s += count(t, c);
    return s;
  }
  Index total() const {
    Index s = 0;
    for (Index v : counts_) s += v;
    return s;
  }
  Index correct() const {
    Index s = 0;
    for (Label c = 0; c < k_; ++c) s += count(c, c);
    return s;
  }
  /// correct / total; 0 for an empty matrix.
  double accuracy() const { return total() == 0 ? 0.0 : static_cast<double>(correct()) / static_cast<double>(total()); }
  /// The largest count in any cell.
  Index max_count() const { return *std::max_element(counts_.begin(), counts_.end()); }

 private:
  void check(Label c, const char* what) const {
    if (c < 0 || c >= k_)
      throw DataError("ConfusionMatrix: " + std::string(what) + " " + std::to_string(c) + " is outside the " +
                      std::to_string(k_) + " classes [0, " + std::to_string(k_ - 1) + "]");
  }

  Index k_;
  std::vector<Index> counts_;  // (K, K) row-major: [truth * K + predicted]
};

}  // namespace loom
