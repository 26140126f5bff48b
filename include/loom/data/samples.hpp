#pragma once
// Samples: a labelled set that training and evaluation draw batches from.
// fit/evaluate take any Samples, so a Dataset of bytes (loaded from IDX files,
// scaled to floats one batch at a time) and a user's own float tensors go
// through the same loop.
//
// Thread safety: gather is const and must be safe to call from many threads.

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "loom/error.hpp"
#include "loom/tensor.hpp"

namespace loom {

using Label = std::int32_t;

class Samples {
 public:
  virtual ~Samples() = default;
  /// Number of samples.
  virtual Index size() const = 0;
  /// Shape of one sample.
  virtual Shape shape() const = 0;
  /// The label of sample i (0 <= i < size()).
  virtual Label label(Index i) const = 0;
  /// Copies samples idx[0], idx[1], ... into x (resized to (idx.size(), shape))
  /// and their labels into labels (which must hold idx.size() entries).
  virtual void gather(std::span<const Index> idx, Tensor& x, std::span<Label> labels) const = 0;
};

/// A view of float samples in a user's tensor (N, H, W, C) with one label per
/// sample. Does not copy: the tensor and labels must outlive the view.
class TensorSamples final : public Samples {
 public:
  TensorSamples(const Tensor& x, std::span<const Label> labels, Shape shape)
      : x_(x), labels_(labels), shape_(shape) {
    if (!holds(x, shape))
      throw ShapeError("TensorSamples: tensor of dimensions " + dims_string(x) + " does not hold samples of shape " +
                       shape.to_string());
    if (static_cast<Index>(labels.size()) != x.dimension(0))
      throw ShapeError("TensorSamples: " + std::to_string(x.dimension(0)) + " samples but " +
                       std::to_string(labels.size()) + " labels");
  }

  Index size() const override { return x_.dimension(0); }
  Shape shape() const override { return shape_; }
  Label label(Index i) const override { return labels_[static_cast<std::size_t>(i)]; }
  void gather(std::span<const Index> idx, Tensor& x, std::span<Label> labels) const override {
    const Index n = static_cast<Index>(idx.size()), per = shape_.size();
    resize_batch(x, n, shape_);
    for (Index i = 0; i < n; ++i) {
      std::copy_n(x_.data() + idx[i] * per, per, x.data() + i * per);
      labels[i] = labels_[idx[i]];
    }
  }

 private:
  const Tensor& x_;
  std::span<const Label> labels_;
  Shape shape_;
};

}  // namespace loom
