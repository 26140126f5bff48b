#pragma once
// Tensors and shapes. Every activation is a rank-4, row-major Eigen tensor in
// channels-last layout (N, H, W, C), as in Keras. A flat feature vector of n
// values is stored as (N, 1, 1, n), so one tensor type serves every layer and
// a row-major (N*H*W, C) matrix view of any activation costs nothing.
//
// Thread safety: value types and free functions; concurrent reads are safe, writes are not.

#include <Eigen/Core>
#include <unsupported/Eigen/CXX11/Tensor>

#include <array>
#include <cstddef>
#include <initializer_list>
#include <string>

#include "loom/error.hpp"

namespace loom {

using Index = Eigen::Index;
using Tensor = Eigen::Tensor<float, 4, Eigen::RowMajor>;  // (N, H, W, C)

using RowMatrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using MatrixMap = Eigen::Map<RowMatrix>;
using ConstMatrixMap = Eigen::Map<const RowMatrix>;
using VectorMap = Eigen::Map<Eigen::VectorXf>;
using ConstVectorMap = Eigen::Map<const Eigen::VectorXf>;

/// The shape of one sample, without the batch dimension: rank 3 (H, W, C) for
/// images and feature maps, rank 1 (n) for flat features.
class Shape {
 public:
  Shape() = default;
  Shape(std::initializer_list<Index> dims) {
    if (dims.size() != 1 && dims.size() != 3)
      throw ShapeError("Shape: expected rank 1 (features) or rank 3 (height, width, channels), got rank " +
                       std::to_string(dims.size()));
    rank_ = static_cast<int>(dims.size());
    int i = 0;
    for (Index d : dims) {
      if (d <= 0) throw ShapeError("Shape: every dimension must be positive, got " + std::to_string(d));
      dims_[i++] = d;
    }
  }
  static Shape image(Index h, Index w, Index c) { return Shape{h, w, c}; }
  static Shape flat(Index n) { return Shape{n}; }

  int rank() const { return rank_; }
  bool empty() const { return rank_ == 0; }
  Index operator[](int i) const { return dims_[i]; }
  // (H, W, C) view: a flat shape (n) reads as (1, 1, n).
  Index height() const { return rank_ == 3 ? dims_[0] : 1; }
  Index width() const { return rank_ == 3 ? dims_[1] : 1; }
  Index channels() const { return rank_ == 3 ? dims_[2] : dims_[0]; }
  Index size() const { return rank_ == 0 ? 0 : height() * width() * channels(); }

  bool operator==(const Shape& o) const {
    if (rank_ != o.rank_) return false;
    for (int i = 0; i < rank_; ++i)
      if (dims_[i] != o.dims_[i]) return false;
    return true;
  }
  bool operator!=(const Shape& o) const { return !(*this == o); }

  /// Keras style, with the batch as None: "(None, 26, 26, 32)".
  std::string to_string() const {
    std::string s = "(None";
    for (int i = 0; i < rank_; ++i) s += ", " + std::to_string(dims_[i]);
    return s + ")";
  }

 private:
  int rank_ = 0;
  std::array<Index, 3> dims_{0, 0, 0};
};

/// Dimensions of a batch of n samples of shape s.
inline std::array<Index, 4> batch_dims(Index n, const Shape& s) {
  return {n, s.height(), s.width(), s.channels()};
}

/// Resizes t to hold n samples of shape s; keeps the buffer when the size is unchanged.
inline void resize_batch(Tensor& t, Index n, const Shape& s) {
  const auto d = batch_dims(n, s);
  if (t.dimension(0) != d[0] || t.dimension(1) != d[1] || t.dimension(2) != d[2] || t.dimension(3) != d[3])
    t.resize(d[0], d[1], d[2], d[3]);
}

/// Resizes t to the dimensions of like.
inline void resize_like(Tensor& t, const Tensor& like) {
  if (t.dimensions() != like.dimensions()) t.resize(like.dimensions());
}

/// True when t holds samples of shape s (any batch size).
inline bool holds(const Tensor& t, const Shape& s) {
  return t.dimension(1) == s.height() && t.dimension(2) == s.width() && t.dimension(3) == s.channels();
}

/// "(32, 28, 28, 1)": the dimensions of a tensor, for error messages.
inline std::string dims_string(const Tensor& t) {
  return "(" + std::to_string(t.dimension(0)) + ", " + std::to_string(t.dimension(1)) + ", " +
         std::to_string(t.dimension(2)) + ", " + std::to_string(t.dimension(3)) + ")";
}

/// Row-major (rows, cols) matrix views over tensor storage, no copies.
inline MatrixMap as_matrix(Tensor& t, Index rows, Index cols) { return {t.data(), rows, cols}; }
inline ConstMatrixMap as_matrix(const Tensor& t, Index rows, Index cols) { return {t.data(), rows, cols}; }

}  // namespace loom
