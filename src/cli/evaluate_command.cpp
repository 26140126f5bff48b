// loom evaluate: a saved model on the Fashion-MNIST test set: loss, accuracy,
// confusion matrix and per-class precision, recall and F1, and optionally a
// report folder with pictures (loom/report/evaluation_report.hpp).

#include <filesystem>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "commands.hpp"
#include "loom/io/json.hpp"
#include "loom/cli.hpp"
#include "loom/data/fashion_mnist.hpp"
#include "loom/io/model_file.hpp"
#include "loom/report/evaluation_report.hpp"

namespace loom::tool {
namespace {

namespace fs = std::filesystem;

const char* kUsage =
    "usage: loom evaluate MODEL [options]\n"
    "Scores a saved model on the Fashion-MNIST test set: test loss and accuracy, the confusion\n"
    "matrix and per-class precision, recall and F1.\n"
    "  --data DIR       folder with the Fashion-MNIST IDX files (default: $LOOM_DATA_DIR,\n"
    "                   ./data/fashion-mnist, /usr/share/datasets/fashion-mnist)\n"
    "  --report DIR     also write a report folder: index.html, metrics.txt, the confusion matrix\n"
    "                   as a heat map, the most confidently wrong test images, and the training\n"
    "                   curves from the model's saved history (docs/evaluation-report.md)\n"
    "  --limit N        evaluate on the first N test images only\n"
    "  --tta flip       test-time augmentation: score the mean probabilities of each image and\n"
    "                   its mirror image (two passes); \"none\" (the default) scores the image alone\n"
    "  --threads N      threads (default: all cores)\n"
    "  --json           print one JSON object: test_accuracy, test_loss, samples, confusion_matrix\n"
    "                   (rows true classes), per_class (precision, recall, f1, support), macro_f1,\n"
    "                   report files\n";

struct Args {
  std::optional<fs::path> model;
  std::optional<std::string> data;
  std::optional<fs::path> report;
  std::optional<Index> limit;
  Tta tta = Tta::None;
  ThreadsAndJson common;
};

Tta parse_tta_flag(const char* v) {
  try {
    return parse_tta(v);
  } catch (const UsageError& e) {
    throw UsageError(std::string("--tta: ") + e.what() + "\n" + kUsage);
  }
}

Args parse(int argc, char** argv) {
  Args a;
  cli::parse_args(
      argc, argv, 1, kUsage, {"--json"},
      [&](const std::string& flag, const char* v) {
        if (flag == "--data") a.data = v;
        else if (flag == "--report") a.report = v;
        else if (flag == "--limit") a.limit = cli::parse_int(flag, v, 1);
        else if (flag == "--tta") a.tta = parse_tta_flag(v);
        else return a.common.take(flag, v);
        return true;
      },
      [&](const std::string& arg) {
        if (a.model) throw UsageError("unexpected argument \"" + arg + "\": give one model\n" + kUsage);
        a.model = arg;
      });
  if (!a.model) throw UsageError(std::string("give the model to evaluate\n") + kUsage);
  return a;
}

std::string json_of(const ClassificationResults& r, const std::vector<std::string>& names,
                    const std::vector<fs::path>& report) {
  const Index k = r.confusion.num_classes();
  std::vector<Label> classes(static_cast<std::size_t>(k));
  for (Label c = 0; c < k; ++c) classes[static_cast<std::size_t>(c)] = c;
  const std::string confusion = json_array(classes, [&](Label t) {
    return json_array(classes, [&](Label p) { return std::to_string(r.confusion.count(t, p)); });
  });
  const std::string per_class = json_array(classes, [&](Label c) {
    const ClassMetrics& m = r.metrics.per_class[static_cast<std::size_t>(c)];
    return JsonObject()
        .integer("label", c)
        .str("class", names[static_cast<std::size_t>(c)])
        .num("precision", m.precision)
        .num("recall", m.recall)
        .num("f1", m.f1)
        .integer("support", m.support)
        .text();
  });
  return JsonObject()
      .num("test_accuracy", r.accuracy())
      .num("test_loss", r.loss)
      .integer("samples", r.samples())
      .raw("confusion_matrix", confusion)
      .raw("per_class", per_class)
      .num("macro_f1", r.metrics.macro_avg.f1)
      .raw("report", json_array(report, [](const fs::path& p) { return json_string(p.string()); }))
      .text();
}

}  // namespace

int evaluate_command(int argc, char** argv) {
  const Args args = parse(argc, argv);
  args.common.apply_threads();
  const Sequential model = load_model(*args.model);
  Dataset test = fashion_mnist::load_test(fashion_mnist::find_data_dir(args.data));
  if (args.limit) test = test.head(std::min(*args.limit, test.size()));

  const Tensor probabilities = model.predict(test, 32, args.tta);
  const ClassificationResults r = score_predictions(labels_of(test), probabilities);
  const std::vector<std::string> names = class_names_for(model, *args.model);

  std::vector<fs::path> report;
  if (args.report)
    report = write_evaluation_report(*args.report, {.test = test,
                                                    .probabilities = probabilities,
                                                    .class_names = names,
                                                    .history = &model.history(),
                                                    .title = args.model->filename().string(),
                                                    .scores = &r});
  if (args.common.json) {
    std::cout << json_of(r, names, report) << '\n';
  } else {
    std::cout << format_classification_results(r, names);
    if (!report.empty()) {
      std::cout << "\nReport written to " << args.report->string() << ":\n";
      for (const fs::path& p : report) std::cout << "  " << p.string() << '\n';
    }
    if (model.history().empty()) std::cout << "(the model file holds no training history: no training curves)\n";
  }
  return 0;
}

}  // namespace loom::tool
