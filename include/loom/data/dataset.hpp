#pragma once
// Dataset: labelled images kept as bytes, handed out as float batches.
// Pixels stay uint8 in memory (60,000 Fashion-MNIST images cost 47 MB, not 188)
// and gather scales only the batch being trained on to [0, 1] (x / 255).
//
//   images_  (N, H, W, C) uint8, row-major, C = 1 for IDX files
//   labels_  (N)          uint8, class indices in [0, num_classes)
//
// Thread safety: immutable after construction; every const member, gather
// included, is safe to call from many threads at once.

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "loom/data/idx.hpp"
#include "loom/data/samples.hpp"
#include "loom/error.hpp"
#include "loom/tensor.hpp"

namespace loom {

/// The one scaling from stored bytes to model inputs, dst[i] = src[i] / 255 in
/// [0, 1]: Dataset::gather and loom::to_tensor (image/image_tensor.hpp) share it.
/// Division, not a multiply by 1/255: that differs by an ulp for half the byte values.
inline void scale_pixels(std::span<const std::uint8_t> src, float* dst) {
  for (std::size_t j = 0; j < src.size(); ++j) dst[j] = static_cast<float>(src[j]) / 255.0f;
}

class Dataset final : public Samples {
 public:
  /// images holds labels.size() samples of shape, row-major (N, H, W, C).
  /// num_classes defaults to the largest label + 1; when given, every label must be below it.
  /// Throws DataError on empty data, a size mismatch or a label out of range.
  Dataset(std::vector<std::uint8_t> images, std::vector<std::uint8_t> labels, Shape shape,
          std::optional<Index> num_classes = std::nullopt)
      : Dataset("Dataset", std::move(images), std::move(labels), shape, num_classes) {}

  /// Loads an image IDX file (N, rows, cols) and a label IDX file (N), raw or .gz.
  /// The images become samples of shape (rows, cols, 1).
  static Dataset from_idx(const std::filesystem::path& images, const std::filesystem::path& labels,
                          std::optional<Index> num_classes = std::nullopt) {
    IdxArray x = read_idx(images, {.rank = 3});
    IdxArray y = read_idx(labels, {.rank = 1});
    if (x.count() != y.count())
      throw DataError(images.string() + " holds " + std::to_string(x.count()) + " images but " + labels.string() +
                      " holds " + std::to_string(y.count()) +
                      " labels; expected one label per image (are both files from the same split?)");
    return Dataset(labels.string(), std::move(x.bytes), std::move(y.bytes), Shape::image(x.dims[1], x.dims[2], 1),
                   num_classes);
  }

  Index size() const override { return static_cast<Index>(labels_.size()); }
  Shape shape() const override { return shape_; }
  Index num_classes() const { return num_classes_; }

  /// x becomes (idx.size(), H, W, C) floats in [0, 1]; labels[i] = label(idx[i]).
  /// The hot path of training: no allocation beyond resizing x.
  void gather(std::span<const Index> idx, Tensor& x, std::span<Label> labels) const override {
    const auto n = static_cast<Index>(idx.size());
    const Index per = shape_.size();  // H * W * C bytes per sample
    if (static_cast<Index>(labels.size()) < n)
      throw ShapeError("Dataset::gather: labels holds " + std::to_string(labels.size()) + " entries but " +
                       std::to_string(n) + " samples were asked for");
    resize_batch(x, n, shape_);
    float* out = x.data();  // (n, H, W, C)
    for (std::size_t i = 0; i < idx.size(); ++i) {
      const Index s = idx[i];
      check_index("gather", s);
      const std::uint8_t* src = images_.data() + s * per;
      float* dst = out + static_cast<Index>(i) * per;
      scale_pixels({src, static_cast<std::size_t>(per)}, dst);
      labels[i] = labels_[static_cast<std::size_t>(s)];
    }
  }

  Label label(Index i) const override {
    check_index("label", i);
    return labels_[static_cast<std::size_t>(i)];
  }
  /// The H * W * C bytes of sample i.
  std::span<const std::uint8_t> image_bytes(Index i) const {
    check_index("image_bytes", i);
    const auto per = static_cast<std::size_t>(shape_.size());
    return {images_.data() + static_cast<std::size_t>(i) * per, per};
  }
  /// All pixels, (N, H, W, C), and all labels, (N).
  std::span<const std::uint8_t> pixels() const { return images_; }
  std::span<const std::uint8_t> labels() const { return labels_; }

  /// How many samples each class has, indexed by class.
  std::vector<Index> class_counts() const {
    std::vector<Index> counts(static_cast<std::size_t>(num_classes_), 0);
    for (std::uint8_t y : labels_) ++counts[y];
    return counts;
  }

  /// Samples [begin, end), clamped to the data set as a Python slice is; keeps num_classes.
  Dataset slice(Index begin, Index end) const {
    begin = std::clamp<Index>(begin, 0, size());
    end = std::clamp<Index>(end, begin, size());
    if (begin == end)
      throw UsageError("Dataset::slice: [" + std::to_string(begin) + ", " + std::to_string(end) +
                       ") selects no samples of " + std::to_string(size()));
    const Index per = shape_.size();
    return Dataset("Dataset::slice",
                   std::vector<std::uint8_t>(images_.begin() + begin * per, images_.begin() + end * per),
                   std::vector<std::uint8_t>(labels_.begin() + begin, labels_.begin() + end), shape_, num_classes_);
  }
  /// The first n samples (all of them when n >= size()), for --limit; keeps num_classes.
  Dataset head(Index n) const {
    if (n < 1) throw UsageError("Dataset::head: n must be at least 1, got " + std::to_string(n));
    return slice(0, n);
  }

 private:
  // where: what to name in messages (a label file, or the API called).
  Dataset(const std::string& where, std::vector<std::uint8_t> images, std::vector<std::uint8_t> labels, Shape shape,
          std::optional<Index> num_classes)
      : images_(std::move(images)), labels_(std::move(labels)), shape_(shape) {
    if (shape_.empty()) throw ShapeError(where + ": the sample shape is empty; give e.g. Shape::image(28, 28, 1)");
    if (labels_.empty()) throw DataError(where + ": empty data set (0 samples)");
    const auto per = static_cast<std::size_t>(shape_.size());
    if (images_.size() / per != labels_.size() || images_.size() % per != 0)
      throw DataError(where + ": " + std::to_string(images_.size()) + " image bytes do not hold " +
                      std::to_string(labels_.size()) + " samples of shape " + shape_.to_string() + " (expected " +
                      std::to_string(labels_.size()) + " x " + std::to_string(per) + " bytes)");
    const auto top = std::max_element(labels_.begin(), labels_.end());
    num_classes_ = num_classes.value_or(Index{*top} + 1);
    if (num_classes_ < 1)
      throw UsageError(where + ": num_classes must be at least 1, got " + std::to_string(num_classes_));
    if (Index{*top} >= num_classes_)
      throw DataError(where + ": label " + std::to_string(*top) + " at index " +
                      std::to_string(top - labels_.begin()) + " is outside the " + std::to_string(num_classes_) +
                      " classes [0, " + std::to_string(num_classes_ - 1) + "]");
  }

  void check_index(const char* what, Index i) const {
    if (i < 0 || i >= size())
      throw UsageError("Dataset::" + std::string(what) + ": index " + std::to_string(i) + " is out of range [0, " +
                       std::to_string(size()) + ")");
  }

  std::vector<std::uint8_t> images_;  // (N, H, W, C)
  std::vector<std::uint8_t> labels_;  // (N)
  Shape shape_;                       // (H, W, C) of one sample
  Index num_classes_ = 0;
};

}  // namespace loom
