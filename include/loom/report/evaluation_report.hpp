#pragma once
// write_evaluation_report: a folder that shows how a classifier does on a
// test set, every picture drawn by loom itself (docs/evaluation-report.md
// describes each file and how to read it).
//
//   index.html            the page to open: headline numbers, tables, pictures
//   metrics.txt           test loss and accuracy, confusion table, per-class table
//   confusion_matrix.png  the confusion matrix as a heat map
//   mistakes.png          the most confidently wrong test images, labelled
//   training_curves.svg   loss and accuracy per epoch, train and validation
//                         (only when a non-empty History is given)
//
//   const Tensor p = model.predict(x_test);
//   auto files = write_evaluation_report("report", {.test = test, .probabilities = p,
//       .class_names = to_class_names(fashion_mnist::class_names), .history = &history});
//
// Thread safety: writes files; safe from many threads as long as they write
// to different folders.

#include <filesystem>
#include <fstream>
#include <string>
#include <system_error>
#include <vector>

#include "loom/data/dataset.hpp"
#include "loom/error.hpp"
#include "loom/image/image.hpp"
#include "loom/report/class_names.hpp"
#include "loom/report/classification_results.hpp"
#include "loom/report/confusion_heatmap.hpp"
#include "loom/report/mistake_grid.hpp"
#include "loom/report/training_curves.hpp"
#include "loom/report/xml_escape.hpp"
#include "loom/training/history.hpp"

namespace loom {

struct EvaluationReportOptions {
  Index mistakes = 25;              // how many of the most confident mistakes mistakes.png shows (at least 1)
  report::MistakeGridOptions grid;  // their layout
  int digits = 4;                   // decimals in the tables
};

struct EvaluationReportInputs {
  const Dataset& test;                        // the test images and their true labels
  const Tensor& probabilities;                // (N, 1, 1, K): the model's predict on test's images, in order
  std::vector<std::string> class_names = {};  // K names, or empty for class numbers
  const History* history = nullptr;           // for training_curves.svg; null or empty: no curves
  std::string title = {};                     // names the model in headings (e.g. its file); may be empty
  EvaluationReportOptions options = {};
  // score_predictions(labels_of(test), probabilities) when the caller has it
  // already (loom evaluate prints it too); null: the report scores them itself.
  const ClassificationResults* scores = nullptr;
};

/// The report file names, as above.
struct EvaluationReportFiles {
  static constexpr const char* index = "index.html";
  static constexpr const char* metrics = "metrics.txt";
  static constexpr const char* confusion = "confusion_matrix.png";
  static constexpr const char* mistakes = "mistakes.png";
  static constexpr const char* curves = "training_curves.svg";
};

namespace detail {

inline void write_text_file(const std::filesystem::path& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary);
  if (!f) throw IoError("write_evaluation_report: cannot open " + path.string() + " for writing");
  f << text;
  if (!f.flush()) throw IoError("write_evaluation_report: writing " + path.string() + " failed");
}

inline std::string report_index_html(const EvaluationReportInputs& in, const ClassificationResults& r,
                                     const std::vector<std::string>& names, bool curves) {
  using report::fixed;
  using report::xml_escape;
  using F = EvaluationReportFiles;
  const int d = in.options.digits;
  const std::string heading = in.title.empty() ? "Evaluation report" : "Evaluation report: " + in.title;
  std::string h = "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\"/>\n<title>" +
                  xml_escape(heading) +
                  "</title>\n<style>\nbody { font-family: sans-serif; max-width: 1000px; margin: 2em auto; padding: "
                  "0 1em; color: #222; }\nimg { max-width: 100%; border: 1px solid #ddd; }\ntable.headline td { "
                  "padding: 0.2em 1em 0.2em 0; }\npre { background: #f6f6f6; padding: 1em; overflow-x: auto; }\n"
                  "</style>\n</head>\n<body>\n<h1>" +
                  xml_escape(heading) + "</h1>\n";
  h += "<table class=\"headline\">\n";
  h += "<tr><td>test loss</td><td><b>" + fixed(r.loss, d) + "</b></td></tr>\n";
  h += "<tr><td>test accuracy</td><td><b>" + fixed(r.accuracy(), d) + "</b> (" +
       std::to_string(r.confusion.correct()) + " of " + std::to_string(r.samples()) + " images)</td></tr>\n";
  h += "<tr><td>macro-average F1</td><td>" + fixed(r.metrics.macro_avg.f1, d) + "</td></tr>\n";
  h += "<tr><td>misclassified</td><td>" + std::to_string(r.mistakes()) + "</td></tr>\n</table>\n";
  h += "<h2>Confusion matrix</h2>\n<p>Rows are true classes, columns predicted classes; each cell gives its count, "
       "its colour the share of the row. The diagonal holds the correct predictions.</p>\n";
  h += std::string("<img src=\"") + F::confusion + "\" alt=\"confusion matrix heat map\"/>\n";
  h += "<h2>Per-class precision, recall and F1</h2>\n<pre>" +
       xml_escape(format_classification_report(r.metrics, names, d)) + "</pre>\n";
  h += "<h2>Most confident mistakes</h2>\n<p>The wrongly classified test images with the highest predicted "
       "probability: under each, its label, the prediction and its probability, and its index in the test set.</p>\n";
  h += std::string("<img src=\"") + F::mistakes + "\" alt=\"most confidently misclassified test images\"/>\n";
  h += "<h2>Training curves</h2>\n";
  h += curves ? std::string("<img src=\"") + F::curves + "\" alt=\"loss and accuracy per epoch\"/>\n"
              : "<p>No training history was given, so there are no training curves.</p>\n";
  h += std::string("<p>All numbers as text: <a href=\"") + F::metrics + "\">" + F::metrics + "</a>.</p>\n";
  return h + "</body>\n</html>\n";
}

}  // namespace detail

/// Creates dir (and its parents) if needed and writes the report files into
/// it, replacing files of the same names. Returns the paths written: metrics,
/// confusion matrix, mistakes, the curves (when there are any), index.html last. Throws IoError when the folder cannot be created
/// or a file cannot be written, ShapeError when probabilities do not match
/// the test set, UsageError on bad options or a wrong number of class names.
inline std::vector<std::filesystem::path> write_evaluation_report(const std::filesystem::path& dir,
                                                                  const EvaluationReportInputs& in) {
  namespace fs = std::filesystem;
  using F = EvaluationReportFiles;
  if (in.options.mistakes < 1)
    throw UsageError("write_evaluation_report: options.mistakes must be at least 1, got " +
                     std::to_string(in.options.mistakes));
  const std::vector<Label> truth = labels_of(in.test);
  const ClassificationResults r = in.scores ? *in.scores : score_predictions(truth, in.probabilities);
  const std::vector<std::string> names = class_names_or_numbers(in.class_names, r.confusion.num_classes());

  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec || !fs::is_directory(dir))
    throw IoError("write_evaluation_report: cannot create the report folder " + dir.string() +
                  (ec ? ": " + ec.message() : ": a file of that name is in the way"));

  std::vector<fs::path> written;
  const auto add = [&](const char* name) { return written.emplace_back(dir / name); };

  detail::write_text_file(add(F::metrics), format_classification_results(r, names, in.options.digits));

  const std::string subtitle = (in.title.empty() ? "" : in.title + ": ") + std::to_string(r.samples()) +
                               " test images, accuracy " + report::fixed(r.accuracy(), in.options.digits);
  write_png(add(F::confusion), report::draw_confusion_heatmap(r.confusion, names, subtitle).image());

  std::vector<report::Mistake> mistakes = report::confident_mistakes(truth, in.probabilities);
  const std::size_t total_mistakes = mistakes.size();
  mistakes.resize(std::min(mistakes.size(), static_cast<std::size_t>(in.options.mistakes)));
  const std::string grid_title = total_mistakes == 0 ? "Most confident mistakes: none"
                                                     : "Most confident mistakes: " + std::to_string(mistakes.size()) +
                                                           " of " + std::to_string(total_mistakes);
  write_png(add(F::mistakes), report::draw_mistake_grid(in.test, mistakes, names, grid_title, in.options.grid).image());

  const bool curves = in.history && !in.history->empty();
  if (curves) detail::write_text_file(add(F::curves), report::training_curves_svg(*in.history, in.title));

  detail::write_text_file(add(F::index), detail::report_index_html(in, r, names, curves));
  return written;
}

}  // namespace loom
