#pragma once
// Per-class precision, recall, F1 and support from a confusion matrix, with
// macro and support-weighted averages, as scikit-learn's classification_report.
//
//   precision(c) = correct(c) / predicted_count(c)   of the samples called c, how many were c
//   recall(c)    = correct(c) / support(c)           of the samples of class c, how many were found
//   f1(c)        = 2 p r / (p + r)                   their harmonic mean
//
// Zero division: a class that was never predicted has precision 0, a class
// with no samples has recall 0, and F1 is 0 when precision and recall are
// both 0. This is scikit-learn's zero_division=0 (its default result, minus
// the warning); no metric is ever NaN.
//
// The macro average is the plain mean over all K classes, those without
// samples included (they count as 0), as scikit-learn does when given the
// full label list. The weighted average weighs each class by its support.
//
// Thread safety: pure functions on values; safe from many threads.

#include <vector>

#include "loom/report/confusion_matrix.hpp"

namespace loom {

struct ClassMetrics {
  double precision = 0.0;
  double recall = 0.0;
  double f1 = 0.0;
  Index support = 0;  // true samples of the class (for the averages: of all classes)
};

struct ClassificationMetrics {
  std::vector<ClassMetrics> per_class;  // indexed by class
  ClassMetrics macro_avg;
  ClassMetrics weighted_avg;
  double accuracy = 0.0;  // correct / total; 0 when there are no samples
  Index total = 0;        // samples counted
};

/// a / b, or 0 when b is 0 (see "Zero division" above).
inline double ratio_or_zero(double a, double b) { return b == 0.0 ? 0.0 : a / b; }

inline ClassificationMetrics classification_metrics(const ConfusionMatrix& m) {
  ClassificationMetrics out;
  const Index k = m.num_classes();
  out.total = m.total();
  out.accuracy = m.accuracy();
  out.macro_avg.support = out.weighted_avg.support = out.total;
  for (Label c = 0; c < k; ++c) {
    ClassMetrics cm;
    const auto hit = static_cast<double>(m.count(c, c));
    cm.support = m.support(c);
    cm.precision = ratio_or_zero(hit, static_cast<double>(m.predicted_count(c)));
    cm.recall = ratio_or_zero(hit, static_cast<double>(cm.support));
    cm.f1 = ratio_or_zero(2.0 * cm.precision * cm.recall, cm.precision + cm.recall);
    out.per_class.push_back(cm);

    const double w = static_cast<double>(cm.support);
    out.macro_avg.precision += cm.precision;
    out.macro_avg.recall += cm.recall;
    out.macro_avg.f1 += cm.f1;
    out.weighted_avg.precision += w * cm.precision;
    out.weighted_avg.recall += w * cm.recall;
    out.weighted_avg.f1 += w * cm.f1;
  }
  const double total = static_cast<double>(out.total);
  for (double* v : {&out.macro_avg.precision, &out.macro_avg.recall, &out.macro_avg.f1})
    *v /= static_cast<double>(k);
  for (double* v : {&out.weighted_avg.precision, &out.weighted_avg.recall, &out.weighted_avg.f1})
    *v = ratio_or_zero(*v, total);
  return out;
}

}  // namespace loom
