#pragma once
// The test images the model got wrong with the most confidence: the first
// place to look for label noise, look-alike classes and what the model has
// not learnt. Each is drawn enlarged (dark on light, as matplotlib's "binary"
// map shows Fashion-MNIST), with three lines under it:
//
//   true: Shirt                  the label in the data set
//   pred: T-shirt/top 0.997      the predicted class and its probability (red)
//   #4172                        the image's index in the test set
//
// Order: highest predicted probability first; equal probabilities by index.
//
// Thread safety: pure functions; safe from many threads.

#include <algorithm>
#include <span>
#include <string>
#include <vector>

#include "loom/data/dataset.hpp"
#include "loom/report/canvas.hpp"
#include "loom/report/confusion_matrix.hpp"
#include "loom/report/format.hpp"

namespace loom::report {

/// One wrongly predicted test image.
struct Mistake {
  Index index = 0;           // in the test set
  Label truth = 0;           // its label
  Label predicted = 0;       // the argmax of its probabilities
  float probability = 0.0f;  // the probability of the predicted class
};

/// Every mistake, most confident first (see Order above); probabilities is (N, 1, 1, K).
inline std::vector<Mistake> confident_mistakes(std::span<const Label> truth, const Tensor& probabilities) {
  const std::vector<Label> predicted = predicted_labels(probabilities);
  if (truth.size() != predicted.size())
    throw ShapeError("confident_mistakes: " + std::to_string(truth.size()) + " labels but " +
                     std::to_string(predicted.size()) + " rows of probabilities");
  const Index k = probabilities.dimension(3);
  std::vector<Mistake> out;
  for (std::size_t i = 0; i < truth.size(); ++i)
    if (truth[i] != predicted[i]) {
      const auto n = static_cast<Index>(i);
      out.push_back({n, truth[i], predicted[i], probabilities.data()[n * k + predicted[i]]});
    }
  std::stable_sort(out.begin(), out.end(),
                   [](const Mistake& a, const Mistake& b) { return a.probability > b.probability; });
  return out;
}

struct MistakeGridOptions {
  int columns = 5;  // images per row
  int scale = 4;    // each image pixel becomes scale x scale pixels (28 -> 112)
};

/// The grid of mistakes (drawn in the order given), with title above it.
/// images supplies the pixels (samples of 1 or 3 channels); names: one per
/// class, or empty for class numbers. No mistakes: a small picture that says so.
inline Canvas draw_mistake_grid(const Dataset& images, std::span<const Mistake> mistakes,
                                std::span<const std::string> names, const std::string& title,
                                const MistakeGridOptions& o = {}) {
  if (o.columns < 1 || o.scale < 1)
    throw UsageError("draw_mistake_grid: columns and scale must be at least 1, got " + std::to_string(o.columns) +
                     " and " + std::to_string(o.scale));
  const auto name = [&](Label c) -> std::string {
    if (names.empty()) return std::to_string(c);
    if (c < 0 || c >= static_cast<Label>(names.size()))
      throw UsageError("draw_mistake_grid: class " + std::to_string(c) + " has no name; " +
                       std::to_string(names.size()) + " class names were given");
    return names[static_cast<std::size_t>(c)];
  };
  struct Caption {
    std::string truth, predicted, index;
  };
  std::vector<Caption> captions;
  for (const Mistake& m : mistakes)
    captions.push_back({"true: " + name(m.truth), "pred: " + name(m.predicted) + " " + fixed(m.probability, 3),
                        "#" + std::to_string(m.index)});

  const Shape shape = images.shape();
  const int img_w = static_cast<int>(shape.width()) * o.scale, img_h = static_cast<int>(shape.height()) * o.scale;
  const int gap = 12, line = Font::line_height + 2, title_h = Canvas::text_height(2);
  int cap_w = 0;
  for (const Caption& cap : captions)
    for (const std::string* t : {&cap.truth, &cap.predicted, &cap.index}) cap_w = std::max(cap_w, Canvas::text_width(*t));
  const int tile_w = std::max(img_w, cap_w) + gap, tile_h = img_h + 4 + 3 * line + gap;
  const int n = static_cast<int>(mistakes.size());
  const int cols = std::max(1, std::min(o.columns, n)), rows = (n + cols - 1) / cols;
  const std::string empty_note = "No test image was misclassified.";
  const int width = std::max(2 * gap + cols * tile_w, 2 * gap + Canvas::text_width(title, 2));
  const int height = gap + title_h + gap + (n == 0 ? line + gap : rows * tile_h);

  Canvas c(width, height);
  const Rgb dark{40, 40, 40}, grey{120, 120, 120}, frame{200, 200, 200}, wrong{192, 32, 32};
  c.text(gap, gap, title, dark, 2);
  const int top = gap + title_h + gap;
  if (n == 0) c.text(gap, top, empty_note, grey);
  for (int i = 0; i < n; ++i) {
    const Mistake& m = mistakes[static_cast<std::size_t>(i)];
    const int x = gap + (i % cols) * tile_w, y = top + (i / cols) * tile_h;
    const int ix = x + (tile_w - gap - img_w) / 2;
    c.draw_image(images.image_bytes(m.index), static_cast<int>(shape.width()), static_cast<int>(shape.height()),
                 static_cast<int>(shape.channels()), ix, y, o.scale, GreyMap::Ink);
    c.outline_rect(ix - 1, y - 1, img_w + 2, img_h + 2, frame);
    const Caption& cap = captions[static_cast<std::size_t>(i)];
    const int cx = ix + img_w / 2;
    c.text_centered(cx, y + img_h + 4, cap.truth, dark);
    c.text_centered(cx, y + img_h + 4 + line, cap.predicted, wrong);
    c.text_centered(cx, y + img_h + 4 + 2 * line, cap.index, grey);
  }
  return c;
}

}  // namespace loom::report
