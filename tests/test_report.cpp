// The evaluation report: confusion matrix and metrics against hand arithmetic
// (zero-division cases included), text tables, the canvas and its font down to
// single pixels, the heat map and mistake grid, the training-curves SVG, and
// the report folder with its files read back.

#include <catch2/catch.hpp>

#include "temp_dir.hpp"

#include <array>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "loom/data/dataset.hpp"
#include "loom/data/fashion_mnist.hpp"
#include "loom/image/image.hpp"
#include "loom/report/canvas.hpp"
#include "loom/report/classification_results.hpp"
#include "loom/report/colormap.hpp"
#include "loom/report/confusion_heatmap.hpp"
#include "loom/report/evaluation_report.hpp"
#include "loom/report/mistake_grid.hpp"
#include "loom/report/training_curves.hpp"

namespace fs = std::filesystem;
namespace rp = loom::report;
using Catch::Matchers::Contains;
using Catch::Matchers::StartsWith;
using loom::Index;
using loom::Label;

namespace {

// Rows of class probabilities as a (N, 1, 1, K) tensor.
loom::Tensor probabilities(const std::vector<std::vector<float>>& rows) {
  const auto n = static_cast<Index>(rows.size()), k = static_cast<Index>(rows.at(0).size());
  loom::Tensor p(n, 1, 1, k);
  for (Index i = 0; i < n; ++i)
    for (Index c = 0; c < k; ++c) p(i, 0, 0, c) = rows[i][c];
  return p;
}

// The smallest box holding every pixel that differs from background: {x0, y0, x1, y1}, inclusive.
std::array<int, 4> ink_box(const rp::Canvas& c, rp::Rgb background = rp::kWhite) {
  std::array<int, 4> box{c.width(), c.height(), -1, -1};
  for (int y = 0; y < c.height(); ++y)
    for (int x = 0; x < c.width(); ++x)
      if (c.get(x, y) != background) box = {std::min(box[0], x), std::min(box[1], y), std::max(box[2], x),
                                            std::max(box[3], y)};
  return box;
}

int count_colour(const rp::Canvas& c, rp::Rgb colour) {
  int n = 0;
  for (int y = 0; y < c.height(); ++y)
    for (int x = 0; x < c.width(); ++x) n += c.get(x, y) == colour;
  return n;
}

std::string read_text(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::size_t count(const std::string& s, const std::string& what) {
  std::size_t n = 0;
  for (auto pos = s.find(what); pos != std::string::npos; pos = s.find(what, pos + 1)) ++n;
  return n;
}

// Every element opened is closed in order: "<a>...</a>", "<b/>"; declarations and comments aside.
bool tags_balance(const std::string& xml) {
  std::vector<std::string> open;
  for (auto lt = xml.find('<'); lt != std::string::npos; lt = xml.find('<', lt + 1)) {
    const auto gt = xml.find('>', lt);
    if (gt == std::string::npos) return false;
    const std::string tag = xml.substr(lt + 1, gt - lt - 1);
    if (tag.empty() || tag[0] == '?' || tag[0] == '!' || tag.back() == '/') continue;
    const std::string name = tag.substr(tag[0] == '/', tag.find_first_of(" \n") - (tag[0] == '/'));
    if (tag[0] != '/') open.push_back(name);
    else if (open.empty() || open.back() != name) return false;
    else open.pop_back();
  }
  return open.empty();
}

// truth 0 0 1 1 2 2, predicted 0 1 1 1 0 2, over 4 classes: class 3 has no samples and no predictions.
loom::ConfusionMatrix hand_matrix() {
  const std::vector<Label> truth = {0, 0, 1, 1, 2, 2}, predicted = {0, 1, 1, 1, 0, 2};
  return loom::ConfusionMatrix::from_labels(truth, predicted, 4);
}

// n 28x28 grey images, image i filled with the value 10 * i, labels as given.
loom::Dataset images(const std::vector<std::uint8_t>& labels, Index classes) {
  std::vector<std::uint8_t> pixels;
  for (std::size_t i = 0; i < labels.size(); ++i) pixels.insert(pixels.end(), 28 * 28, static_cast<std::uint8_t>(10 * i));
  return loom::Dataset(pixels, labels, loom::Shape::image(28, 28, 1), classes);
}

}  // namespace

TEST_CASE("ConfusionMatrix counts true classes in rows, predictions in columns", "[report]") {
  const loom::ConfusionMatrix m = hand_matrix();
  // std::array, not nested vectors: GCC 12 at -O2 -march=native (AVX-512) has been seen to
  // miscompile a nested-vector initializer like this one inside a Catch test case.
  const std::array<std::array<Index, 4>, 4> expected = {{{1, 1, 0, 0}, {0, 2, 0, 0}, {1, 0, 1, 0}, {0, 0, 0, 0}}};
  for (Label t = 0; t < 4; ++t)
    for (Label p = 0; p < 4; ++p) {
      INFO("cell (" << t << ", " << p << ")");
      CHECK(m.count(t, p) == expected[t][p]);
    }
  CHECK(m.support(0) == 2);
  CHECK(m.support(3) == 0);
  CHECK(m.predicted_count(1) == 3);
  CHECK(m.total() == 6);
  CHECK(m.correct() == 4);
  CHECK(m.accuracy() == Approx(4.0 / 6));
  CHECK(m.max_count() == 2);
  CHECK(loom::ConfusionMatrix(3).accuracy() == 0.0);  // empty: 0, not NaN
}

TEST_CASE("ConfusionMatrix rejects bad labels and sizes", "[report]") {
  const std::vector<Label> two = {0, 1}, three = {0, 1, 2}, bad = {0, 5};
  CHECK_THROWS_AS(loom::ConfusionMatrix::from_labels(two, three, 3), loom::ShapeError);
  CHECK_THROWS_WITH(loom::ConfusionMatrix::from_labels(two, bad, 3),
                    Contains("predicted label 5") && Contains("3 classes [0, 2]"));
  CHECK_THROWS_AS(loom::ConfusionMatrix(0), loom::UsageError);
}

TEST_CASE("Predictions from probabilities are the argmax, ties to the lowest class", "[report]") {
  const loom::Tensor p = probabilities({{0.1f, 0.7f, 0.2f}, {0.4f, 0.2f, 0.4f}, {0.0f, 0.0f, 1.0f}});
  CHECK(loom::predicted_labels(p) == std::vector<Label>{1, 0, 2});
  const std::vector<Label> truth = {1, 2, 2};
  const loom::ConfusionMatrix m = loom::ConfusionMatrix::from_probabilities(truth, p);
  CHECK(m.num_classes() == 3);
  CHECK(m.count(2, 0) == 1);
  CHECK(m.correct() == 2);
  CHECK_THROWS_WITH(loom::predicted_labels(loom::Tensor(2, 2, 1, 3)), Contains("(N, 1, 1, K)") && Contains("(2, 2, 1, 3)"));
}

TEST_CASE("Per-class metrics and averages match hand arithmetic, zero divisions give 0", "[report]") {
  const loom::ClassificationMetrics r = loom::classification_metrics(hand_matrix());
  REQUIRE(r.per_class.size() == 4);
  // class 0: 1 of 2 predictions right, 1 of 2 samples found.
  CHECK(r.per_class[0].precision == Approx(0.5));
  CHECK(r.per_class[0].recall == Approx(0.5));
  CHECK(r.per_class[0].f1 == Approx(0.5));
  // class 1: 2 of 3 predictions right, both samples found; F1 = 2 (2/3)(1) / (5/3) = 0.8.
  CHECK(r.per_class[1].precision == Approx(2.0 / 3));
  CHECK(r.per_class[1].recall == Approx(1.0));
  CHECK(r.per_class[1].f1 == Approx(0.8));
  // class 2: its one prediction right, half its samples found.
  CHECK(r.per_class[2].precision == Approx(1.0));
  CHECK(r.per_class[2].recall == Approx(0.5));
  CHECK(r.per_class[2].f1 == Approx(2.0 / 3));
  // class 3: never predicted and no samples: every metric 0, none NaN.
  CHECK(r.per_class[3].precision == 0.0);
  CHECK(r.per_class[3].recall == 0.0);
  CHECK(r.per_class[3].f1 == 0.0);
  CHECK(r.per_class[3].support == 0);
  // Macro: plain mean over all 4 classes; weighted: by support 2, 2, 2, 0.
  CHECK(r.macro_avg.precision == Approx((0.5 + 2.0 / 3 + 1.0 + 0.0) / 4));
  CHECK(r.macro_avg.recall == Approx(0.5));
  CHECK(r.macro_avg.f1 == Approx((0.5 + 0.8 + 2.0 / 3) / 4));
  CHECK(r.weighted_avg.precision == Approx((0.5 + 2.0 / 3 + 1.0) / 3));
  CHECK(r.weighted_avg.recall == Approx(4.0 / 6));
  CHECK(r.weighted_avg.f1 == Approx((0.5 + 0.8 + 2.0 / 3) / 3));
  CHECK(r.macro_avg.support == 6);
  CHECK(r.accuracy == Approx(4.0 / 6));
  CHECK(r.total == 6);
}

TEST_CASE("A class predicted but never present has precision 0, recall 0", "[report]") {
  const std::vector<Label> truth = {0, 0}, predicted = {0, 1};
  const loom::ClassificationMetrics r =
      loom::classification_metrics(loom::ConfusionMatrix::from_labels(truth, predicted, 2));
  CHECK(r.per_class[1].precision == 0.0);  // 0 right of 1 prediction
  CHECK(r.per_class[1].recall == 0.0);     // no samples
  CHECK(r.per_class[1].f1 == 0.0);
  CHECK(r.per_class[0].precision == 1.0);
  CHECK(r.per_class[0].recall == 0.5);
  const loom::ClassificationMetrics empty = loom::classification_metrics(loom::ConfusionMatrix(2));
  CHECK(empty.weighted_avg.f1 == 0.0);
  CHECK(empty.accuracy == 0.0);
}

TEST_CASE("Text tables: aligned confusion table and classification_report layout", "[report]") {
  const std::vector<std::string> names = {"T-shirt/top", "Trouser", "Bag", "Ankle boot"};
  const std::string cm = loom::format_confusion_matrix(hand_matrix(), names);
  CHECK(cm ==
        "Confusion matrix (rows: true class, columns: predicted class)\n\n"
        "               0  1  2  3\n"
        "0 T-shirt/top  1  1  0  0\n"
        "1 Trouser      0  2  0  0\n"
        "2 Bag          1  0  1  0\n"
        "3 Ankle boot   0  0  0  0\n");
  const std::string report = loom::format_classification_report(loom::classification_metrics(hand_matrix()), names);
  CHECK(report ==
        "              precision    recall  f1-score   support\n"
        "\n"
        " T-shirt/top     0.5000    0.5000    0.5000         2\n"
        "     Trouser     0.6667    1.0000    0.8000         2\n"
        "         Bag     1.0000    0.5000    0.6667         2\n"
        "  Ankle boot     0.0000    0.0000    0.0000         0\n"
        "\n"
        "    accuracy                         0.6667         6\n"
        "   macro avg     0.5417    0.5000    0.4917         6\n"
        "weighted avg     0.7222    0.6667    0.6556         6\n");
  // Without names: class numbers.
  CHECK_THAT(loom::format_confusion_matrix(hand_matrix()), Contains("\n3  0  0  0  0\n"));
  CHECK_THROWS_WITH(loom::format_confusion_matrix(hand_matrix(), std::vector<std::string>{"a", "b"}),
                    Contains("2 names given for 4 classes"));
}

TEST_CASE("score_predictions: loss as Keras computes it, accuracy, and the printed summary", "[report]") {
  const loom::Tensor p = probabilities({{0.8f, 0.2f}, {0.4f, 0.6f}, {0.9f, 0.1f}});
  const std::vector<Label> truth = {0, 1, 1};
  const loom::ClassificationResults r = loom::score_predictions(truth, p);
  CHECK(r.loss == Approx((-std::log(0.8) - std::log(0.6) - std::log(0.1)) / 3).epsilon(1e-6));
  CHECK(r.accuracy() == Approx(2.0 / 3));
  CHECK(r.mistakes() == 1);
  CHECK_THAT(loom::format_classification_results(r), StartsWith("Test loss: 1.0122 - accuracy: 0.6667 (2/3 correct)\n"));
  const std::vector<Label> two = {0, 1};
  CHECK_THROWS_WITH(loom::score_predictions(two, p), Contains("3 rows of probabilities for 2 labelled samples"));
}

TEST_CASE("Canvas text: glyphs land on the expected pixels", "[report]") {
  rp::Canvas c(40, 30);
  CHECK(c.text(5, 7, "Hi", rp::kBlack) == 11);
  // 'H' spans columns 5-9, rows 7-13; 'i' (columns 1-3 of its cell, 6 further) ends at column 14.
  CHECK(ink_box(c) == std::array<int, 4>{5, 7, 14, 13});
  CHECK(c.get(5, 10) == rp::kBlack);   // H's bar, row 3
  CHECK(c.get(7, 10) == rp::kBlack);
  CHECK(c.get(7, 9) == rp::kWhite);    // between H's legs
  CHECK(c.get(13, 7) == rp::kBlack);   // i's dot, column 2 of its cell
  CHECK(c.get(13, 8) == rp::kWhite);   // the gap under the dot
  CHECK(c.get(12, 9) == rp::kBlack);   // i's serif and stem from row 2
  CHECK(c.get(14, 9) == rp::kWhite);

  rp::Canvas big(30, 30);
  big.text(0, 0, "T", rp::Rgb{200, 0, 0}, 2);
  CHECK(ink_box(big) == std::array<int, 4>{0, 0, 9, 13});  // 5x7 font pixels of 2x2
  CHECK(count_colour(big, {200, 0, 0}) == (5 + 6) * 4);    // bar of 5 and stem of 6 below it

  rp::Canvas desc(20, 20);
  desc.text(0, 0, "g", rp::kBlack);
  CHECK(ink_box(desc)[3] == 8);  // descender below the baseline

  rp::Canvas box(20, 20);
  box.text(2, 2, "\t", rp::kBlack);  // no glyph: a hollow box
  CHECK(ink_box(box) == std::array<int, 4>{2, 2, 6, 8});
  CHECK(box.get(4, 5) == rp::kWhite);
  CHECK(rp::Canvas::text_width("T-shirt/top") == 65);
  CHECK(rp::Canvas::text_width("") == 0);
}

TEST_CASE("Canvas text turned upwards reads bottom to top", "[report]") {
  rp::Canvas c(40, 60);
  c.text_up(20, 50, "T", rp::kBlack);
  CHECK(ink_box(c) == std::array<int, 4>{20, 46, 26, 50});
  for (int y = 46; y <= 50; ++y) CHECK(c.get(20, y) == rp::kBlack);  // T's bar faces left
  for (int x = 20; x <= 26; ++x) CHECK(c.get(x, 48) == rp::kBlack);  // its stem runs right
  CHECK(c.get(26, 46) == rp::kWhite);
  // Text running off the canvas is clipped, not an error.
  c.text(35, 55, "clipped", rp::kBlack, 3);
  c.text_up(-5, 3, "clipped", rp::kBlack);
}

TEST_CASE("Canvas rectangles, lines and enlarged images", "[report]") {
  rp::Canvas c(20, 20);
  c.fill_rect(-5, -5, 8, 7, rp::kBlack);  // clipped to (0,0)-(2,1)
  CHECK(ink_box(c) == std::array<int, 4>{0, 0, 2, 1});
  c.line(5, 5, 10, 8, rp::Rgb{1, 2, 3});
  CHECK(c.get(5, 5) == rp::Rgb{1, 2, 3});
  CHECK(c.get(10, 8) == rp::Rgb{1, 2, 3});

  rp::Canvas img(10, 10);
  const std::vector<std::uint8_t> px = {0, 255, 100, 30};  // 2 x 2 grey
  img.draw_image(px, 2, 2, 1, 1, 1, 3);
  CHECK(img.get(1, 1) == rp::kBlack);
  CHECK(img.get(3, 3) == rp::kBlack);
  CHECK(img.get(4, 1) == rp::kWhite);
  CHECK(img.get(6, 6) == rp::Rgb{30, 30, 30});
  CHECK(img.get(7, 7) == rp::kWhite);  // outside the 6 x 6 block
  img.draw_image(px, 2, 2, 1, 1, 1, 3, rp::GreyMap::Ink);
  CHECK(img.get(1, 1) == rp::kWhite);
  CHECK(img.get(6, 6) == rp::Rgb{225, 225, 225});
  CHECK_THROWS_AS(img.draw_image(px, 3, 2, 1, 0, 0), loom::ShapeError);
  CHECK_THROWS_AS(img.draw_image(px, 2, 2, 2, 0, 0), loom::ShapeError);
}

TEST_CASE("viridis runs from dark purple to yellow, lighter all the way", "[report]") {
  CHECK(rp::viridis(0.0) == rp::Rgb{68, 1, 84});
  CHECK(rp::viridis(1.0) == rp::Rgb{253, 231, 37});
  CHECK(rp::viridis(-1.0) == rp::viridis(0.0));
  CHECK(rp::viridis(std::nan("")) == rp::viridis(0.0));
  double last = -1;
  for (int i = 0; i <= 100; ++i) {
    const rp::Rgb c = rp::viridis(i / 100.0);
    const double luma = 0.299 * c.r + 0.587 * c.g + 0.114 * c.b;
    CHECK(luma > last);
    last = luma;
  }
  CHECK(rp::text_colour_on(rp::viridis(0.0)) == rp::kWhite);
  CHECK(rp::text_colour_on(rp::viridis(1.0)) == rp::kBlack);
}

TEST_CASE("Confusion heat map: one yellow cell per perfect row, counts written in", "[report]") {
  const std::vector<Label> truth = {0, 0, 1, 1, 1}, predicted = {0, 0, 1, 1, 1};
  const auto m = loom::ConfusionMatrix::from_labels(truth, predicted, 2);
  const std::vector<std::string> names = {"Sandal", "Bag"};
  const rp::Canvas c = rp::draw_confusion_heatmap(m, names, "5 test images");
  CHECK(c.width() > 200);
  CHECK(c.height() > 150);
  // Two full cells (55 x 55 at 2x text) less their black count digits; two empty cells in dark purple.
  const int cell_area = 55 * 55;
  CHECK(count_colour(c, rp::viridis(1.0)) > 2 * cell_area * 8 / 10);
  CHECK(count_colour(c, rp::viridis(0.0)) > 2 * cell_area * 8 / 10);
  // Many classes switch to 1x text and still fit.
  const rp::Canvas wide = rp::draw_confusion_heatmap(loom::ConfusionMatrix(30));
  CHECK(wide.width() > 30 * 28);
}

TEST_CASE("Most confident mistakes come first, ties by index", "[report]") {
  const loom::Tensor p = probabilities({{0.9f, 0.1f}, {0.3f, 0.7f}, {0.2f, 0.8f}, {0.3f, 0.7f}, {0.6f, 0.4f}});
  const std::vector<Label> truth = {0, 0, 0, 0, 1};
  const auto m = rp::confident_mistakes(truth, p);
  REQUIRE(m.size() == 4);
  CHECK(m[0].index == 2);
  CHECK(m[0].probability == 0.8f);
  CHECK(m[1].index == 1);  // 0.7 tied with sample 3
  CHECK(m[2].index == 3);
  CHECK(m[3].index == 4);
  CHECK(m[3].truth == 1);
  CHECK(m[3].predicted == 0);
}

TEST_CASE("Mistake grid draws every image enlarged and inverted", "[report]") {
  // Image i is filled with 10 * i; image 0 is blank (0), drawn white under the ink map.
  std::vector<std::uint8_t> pixels(3 * 28 * 28, 0);
  std::fill(pixels.begin() + 28 * 28, pixels.end(), 255);  // images 1 and 2 fully inked: drawn black
  const loom::Dataset data(pixels, {0, 1, 2}, loom::Shape::image(28, 28, 1));
  const std::vector<rp::Mistake> mistakes = {{1, 1, 0, 0.97f}, {2, 2, 1, 0.5f}};
  const std::vector<std::string> names = {"T-shirt/top", "Trouser", "Ankle boot"};
  const rp::Canvas c = rp::draw_mistake_grid(data, mistakes, names, "Most confident mistakes", {.columns = 1, .scale = 2});
  CHECK(count_colour(c, rp::kBlack) == 2 * 56 * 56);  // captions and title are dark grey and red, not black
  CHECK(c.height() > 2 * 56);
  CHECK(count_colour(c, {192, 32, 32}) > 0);  // the prediction line
  const rp::Canvas none = rp::draw_mistake_grid(data, {}, names, "Most confident mistakes: none");
  CHECK(count_colour(none, rp::kBlack) == 0);
  CHECK_THROWS_AS(rp::draw_mistake_grid(data, mistakes, std::vector<std::string>{"a"}, ""), loom::UsageError);
}

TEST_CASE("Ticks are round and cover the range", "[report]") {
  const rp::Ticks t = rp::Ticks::covering(0.12, 0.87);
  CHECK(t.step == Approx(0.2));
  CHECK(t.first == Approx(0.0));
  CHECK(t.last == Approx(1.0));
  CHECK(t.decimals == 1);
  CHECK(t.values().size() == 6);
  const rp::Ticks flat = rp::Ticks::covering(1.0, 1.0);  // widened
  CHECK(flat.first < 1.0);
  CHECK(flat.last > 1.0);
  CHECK(rp::Ticks::covering(0.25, 0.34).decimals == 2);
}

TEST_CASE("Training curves SVG: standalone, one polyline per series, escaped title", "[report]") {
  loom::History h;
  h.epochs.push_back({.epoch = 1, .loss = 0.5, .accuracy = 0.8, .val_loss = 0.45, .val_accuracy = 0.83});
  h.epochs.push_back({.epoch = 2, .loss = 0.3, .accuracy = 0.9, .val_loss = 0.35, .val_accuracy = 0.87});
  const std::string svg = rp::training_curves_svg(h, "model <a&b>");
  CHECK_THAT(svg, StartsWith("<svg xmlns=\"http://www.w3.org/2000/svg\""));
  CHECK_THAT(svg, Contains("</svg>"));
  CHECK(tags_balance(svg));
  CHECK(count(svg, "<polyline") == 4);  // train and validation, in each panel
  CHECK(count(svg, "stroke-dasharray") == 4);  // validation lines and their legend samples
  CHECK_THAT(svg, Contains("model &lt;a&amp;b&gt;"));
  CHECK(count(svg, "<circle") == 8);

  loom::History train_only;
  train_only.epochs.push_back({.epoch = 1, .loss = 0.5, .accuracy = 0.8});
  const std::string one = rp::training_curves_svg(train_only);
  CHECK(tags_balance(one));
  CHECK(count(one, "<polyline") == 2);
  CHECK(count(one, "<circle") == 2);  // one epoch still shows, as a dot
  CHECK(count(one, "text-anchor=\"middle\">1</text>") == 2);  // its epoch is the only x tick in each panel
  CHECK(count(one, "text-anchor=\"middle\">0</text>") == 0);
  CHECK(count(one, "validation") == 0);
  CHECK(count(one, "nan") == 0);
  CHECK(count(one, "inf") == 0);

  CHECK_THROWS_AS(rp::training_curves_svg(loom::History{}), loom::UsageError);
}

namespace {

// A 6-image test set over 3 classes with 2 mistakes, and its probabilities.
struct SmallEvaluation {
  loom::Dataset test = images({0, 1, 2, 0, 1, 2}, 3);
  loom::Tensor p = probabilities(
      {{0.8f, 0.1f, 0.1f}, {0.1f, 0.8f, 0.1f}, {0.1f, 0.1f, 0.8f}, {0.1f, 0.9f, 0.0f}, {0.6f, 0.3f, 0.1f}, {0.2f, 0.2f, 0.6f}});
  std::vector<std::string> names = {"T-shirt/top", "Trouser", "Ankle boot"};
};

}  // namespace

TEST_CASE("write_evaluation_report writes readable pictures, the curves and an index", "[report]") {
  loom::testing::TempDir tmp("loom-test-report");
  const SmallEvaluation e;
  loom::History h;
  h.epochs.push_back({.epoch = 1, .loss = 0.5, .accuracy = 0.8});
  const fs::path dir = tmp / "nested/report";
  const auto files = loom::write_evaluation_report(
      dir, {.test = e.test, .probabilities = e.p, .class_names = e.names, .history = &h, .title = "toy & model"});
  REQUIRE(files.size() == 5);
  for (const fs::path& f : files) CHECK(fs::file_size(f) > 0);

  const loom::Image cm = loom::read_image(dir / "confusion_matrix.png");
  CHECK(cm.channels == 3);
  CHECK(cm.width > 200);
  CHECK(cm.height > 150);
  const loom::Image grid = loom::read_image(dir / "mistakes.png");
  CHECK(grid.channels == 3);
  CHECK(grid.width >= 2 * 28 * 4);  // two mistakes side by side at 4x

  const std::string svg = read_text(dir / "training_curves.svg");
  CHECK_THAT(svg, StartsWith("<svg xmlns="));
  CHECK(tags_balance(svg));
  const std::string html = read_text(dir / "index.html");
  CHECK(tags_balance(html.substr(html.find("<html"))));
  for (const char* f : {"confusion_matrix.png", "mistakes.png", "training_curves.svg", "metrics.txt"})
    CHECK_THAT(html, Contains(std::string("\"") + f + "\""));
  CHECK_THAT(html, Contains("toy &amp; model"));
  CHECK_THAT(html, Contains("0.6667"));  // accuracy, 4 of 6
  const std::string text = read_text(dir / "metrics.txt");
  CHECK_THAT(text, StartsWith("Test loss: "));
  CHECK_THAT(text, Contains("Ankle boot"));
  CHECK_THAT(text, Contains("weighted avg"));
}

TEST_CASE("write_evaluation_report without history, and its errors", "[report]") {
  loom::testing::TempDir tmp("loom-test-report");
  const SmallEvaluation e;
  const auto files = loom::write_evaluation_report(tmp.path, {.test = e.test, .probabilities = e.p});
  CHECK(files.size() == 4);
  CHECK_FALSE(fs::exists(tmp / "training_curves.svg"));
  CHECK_THAT(read_text(tmp / "index.html"), Contains("No training history"));

  std::ofstream(tmp / "blocker") << "a file";
  CHECK_THROWS_WITH(loom::write_evaluation_report(tmp / "blocker/report", {.test = e.test, .probabilities = e.p}),
                    Contains("cannot create the report folder") && Contains("blocker"));
  CHECK_THROWS_AS(loom::write_evaluation_report(tmp / "blocker", {.test = e.test, .probabilities = e.p}),
                  loom::IoError);
  const loom::Tensor short_p = probabilities({{1.0f, 0.0f, 0.0f}});
  CHECK_THROWS_AS(loom::write_evaluation_report(tmp.path, {.test = e.test, .probabilities = short_p}), loom::ShapeError);
  CHECK_THROWS_AS(loom::write_evaluation_report(tmp.path, {.test = e.test, .probabilities = e.p, .class_names = {"a"}}),
                  loom::UsageError);
}
