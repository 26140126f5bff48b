#pragma once
// Text tables of a classification result, for a terminal or a text file:
// the confusion matrix with class names on the rows, and a per-class table in
// the layout of scikit-learn's classification_report.
//
//   Confusion matrix (rows: true class, columns: predicted class)
//
//                    0    1    2 ...
//   0 T-shirt/top  690    0   12
//   1 Trouser        0  964    0
//   ...
//
//                 precision    recall  f1-score   support
//
//    T-shirt/top     0.8824    0.6900    0.7744      1000
//        Trouser     0.9877    0.9640    0.9757      1000
//   ...
//       accuracy                         0.8489     10000
//      macro avg     0.8663    0.8489    0.8527     10000
//   weighted avg     0.8663    0.8489    0.8527     10000
//
// Thread safety: pure functions; safe from many threads.

#include <algorithm>
#include <span>
#include <string>

#include "loom/report/class_names.hpp"
#include "loom/report/classification_metrics.hpp"
#include "loom/report/confusion_matrix.hpp"
#include "loom/report/format.hpp"

namespace loom {

/// The matrix as an aligned table; rows "i name", columns the class numbers i.
/// names: one per class, or empty for numbers only.
inline std::string format_confusion_matrix(const ConfusionMatrix& m, std::span<const std::string> names = {}) {
  const Index k = m.num_classes();
  const std::vector<std::string> shown = class_names_or_numbers(names, k);
  const bool numbered = names.empty();  // the names are the numbers already
  std::size_t name_w = 0;
  for (const std::string& n : shown) name_w = std::max(name_w, n.size());
  const int num_w = static_cast<int>(std::to_string(k - 1).size());
  const int cell_w = 2 + static_cast<int>(std::max(std::to_string(m.max_count()).size(), std::to_string(k - 1).size()));
  const int label_w = numbered ? num_w : num_w + 1 + static_cast<int>(name_w);

  std::string s = "Confusion matrix (rows: true class, columns: predicted class)\n\n";
  s += std::string(static_cast<std::size_t>(label_w), ' ');
  for (Label c = 0; c < k; ++c) s += report::format("%*d", cell_w, c);
  s += '\n';
  for (Label t = 0; t < k; ++t) {
    s += numbered ? report::format("%*d", num_w, t)
                  : report::format("%*d %-*s", num_w, t, static_cast<int>(name_w), shown[t].c_str());
    for (Label p = 0; p < k; ++p) s += report::format("%*lld", cell_w, static_cast<long long>(m.count(t, p)));
    s += '\n';
  }
  return s;
}

/// The per-class table with accuracy and the macro and weighted averages, in
/// scikit-learn's classification_report layout; digits decimals per value.
inline std::string format_classification_report(const ClassificationMetrics& r,
                                                std::span<const std::string> names = {}, int digits = 4) {
  const std::vector<std::string> shown = class_names_or_numbers(names, static_cast<Index>(r.per_class.size()));
  int w = static_cast<int>(std::string_view("weighted avg").size());
  for (const std::string& n : shown) w = std::max(w, static_cast<int>(n.size()));
  w = std::max(w, digits);
  const auto row = [&](const std::string& name, const ClassMetrics& c) {
    return report::format("%*s  %9.*f %9.*f %9.*f %9lld\n", w, name.c_str(), digits, c.precision, digits,
                                  c.recall, digits, c.f1, static_cast<long long>(c.support));
  };
  std::string s = report::format("%*s  %9s %9s %9s %9s\n\n", w, "", "precision", "recall", "f1-score", "support");
  for (std::size_t c = 0; c < shown.size(); ++c) s += row(shown[c], r.per_class[c]);
  s += '\n';
  s += report::format("%*s  %9s %9s %9.*f %9lld\n", w, "accuracy", "", "", digits, r.accuracy,
                              static_cast<long long>(r.total));
  s += row("macro avg", r.macro_avg);
  s += row("weighted avg", r.weighted_avg);
  return s;
}

}  // namespace loom
