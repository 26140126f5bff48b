#pragma once
// Catalog: the items a visual search looks through. Each item has a unit
// vector (its embedding), an id (unique, chosen by the caller: a training-set
// index, a product number), a class label and, when it came from an image
// file, that file's path. The catalog also records which model and layer
// made its vectors (the model itself, its fingerprint and the layer's name),
// so a query embedded by another model can be refused, and the class names
// its labels index.
//
//   Catalog c(catalog_info_for(model, "", names));   // catalog_model.hpp
//   c.add(vectors, ids, labels);          // vectors: (n, dim) row-major, unit rows
//   c.remove(ids);                        // compacts: no tombstones for search to skip
//
// Vectors are kept as float32, or as int8 (VectorEncoding::Int8: one byte per
// value and one float scale per vector, a quarter of the memory). Search
// reads them in blocks through decode_rows, so both encodings share one
// search code path. The file format is in catalog_file.hpp.
//
// Thread safety: a value; const members are safe from many threads.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "loom/data/samples.hpp"
#include "loom/error.hpp"
#include "loom/search/unit_vectors.hpp"
#include "loom/tensor.hpp"

namespace loom::search {

enum class VectorEncoding : std::uint8_t {
  Float32 = 0,  // 4 bytes per value
  Int8 = 1,     // 1 byte per value + a float scale per vector: round(v / scale), scale = max |v| / 127
};

inline const char* encoding_name(VectorEncoding e) { return e == VectorEncoding::Int8 ? "int8" : "float32"; }

/// Labels are below this (and below the class count when the catalog names
/// its classes), so that per-label tables stay small.
inline constexpr Label kMaxLabels = 1 << 16;

/// Whether l can label an item of a catalog with `classes` named classes (0: unnamed).
inline bool valid_label(Label l, std::size_t classes) {
  return l >= 0 && l < kMaxLabels && (classes == 0 || static_cast<std::size_t>(l) < classes);
}

/// "0 to 9" or "0 to 65535": the labels valid_label admits.
inline std::string label_range(std::size_t classes) {
  return "0 to " + std::to_string(classes > 0 ? static_cast<Label>(classes) - 1 : kMaxLabels - 1);
}

struct CatalogInfo {
  Index dim = 0;                          // values per vector
  std::uint64_t model_fingerprint = 0;    // of the model that embedded the items (catalog_model.hpp); 0: none
  std::vector<std::uint8_t> model;        // that model's file, weights only; empty for vectors from elsewhere
  std::string layer;                      // the layer whose output the vectors are
  std::vector<std::string> class_names;   // names of labels 0, 1, ...
  VectorEncoding encoding = VectorEncoding::Float32;
};

class Catalog {
 public:
  explicit Catalog(CatalogInfo info) : info_(std::move(info)) {
    if (info_.dim <= 0) throw UsageError("Catalog: the vector dimension must be positive, got " + std::to_string(info_.dim));
  }

  const CatalogInfo& info() const { return info_; }
  Index dim() const { return info_.dim; }
  Index size() const { return static_cast<Index>(ids_.size()); }
  bool empty() const { return ids_.empty(); }
  VectorEncoding encoding() const { return info_.encoding; }

  std::int64_t id(Index i) const { return ids_[static_cast<std::size_t>(i)]; }
  Label label(Index i) const { return labels_[static_cast<std::size_t>(i)]; }
  /// The item's source file, "" when it did not come from one.
  const std::string& path(Index i) const { return paths_[static_cast<std::size_t>(i)]; }
  std::span<const std::int64_t> ids() const { return ids_; }
  std::span<const Label> labels() const { return labels_; }
  /// The position of the item with this id, or -1.
  Index find(std::int64_t id) const {
    const auto it = position_.find(id);
    return it == position_.end() ? -1 : it->second;
  }
  /// The name of a label ("7" when the catalog has no name for it).
  std::string class_name(Label l) const {
    return l >= 0 && static_cast<std::size_t>(l) < info_.class_names.size() ? info_.class_names[static_cast<std::size_t>(l)]
                                                                            : std::to_string(l);
  }

  /// Appends n items: vectors (n, dim) row-major, one id and label each, and
  /// their paths (empty span: none). UsageError on a repeated id, a label
  /// outside valid_label's range, a vector that is not
  /// of unit length (or all zero; unit_vectors.hpp) or mismatched sizes.
  void add(const float* vectors, std::span<const std::int64_t> ids, std::span<const Label> labels,
           std::span<const std::string> paths = {}) {
    const std::size_t n = ids.size();
    if (labels.size() != n || (!paths.empty() && paths.size() != n))
      throw UsageError("Catalog::add: " + std::to_string(n) + " ids but " + std::to_string(labels.size()) +
                       " labels and " + std::to_string(paths.size()) + " paths");
    if (const auto [row, problem] = first_non_unit_row(vectors, static_cast<Index>(n), dim()); row >= 0)
      throw UsageError("Catalog::add: the vector of item " + std::to_string(ids[static_cast<std::size_t>(row)]) + " " +
                       problem);
    const std::size_t classes = info_.class_names.size();
    for (const Label l : labels)
      if (!valid_label(l, classes))
        throw UsageError("Catalog::add: label " + std::to_string(l) + " is not one of the catalog's labels (" +
                         label_range(classes) + ")");
    const Index first = size();
    for (std::size_t i = 0; i < n; ++i)
      if (!position_.emplace(ids[i], first + static_cast<Index>(i)).second) {
        for (std::size_t j = 0; j < i; ++j) position_.erase(ids[j]);  // as it was
        throw UsageError("Catalog::add: id " + std::to_string(ids[i]) + " is already in the catalog; ids must be unique");
      }
    ids_.insert(ids_.end(), ids.begin(), ids.end());
    labels_.insert(labels_.end(), labels.begin(), labels.end());
    if (paths.empty()) paths_.resize(ids_.size());
    else paths_.insert(paths_.end(), paths.begin(), paths.end());
    append_vectors(vectors, static_cast<Index>(n));
  }
  /// Adds (n, 1, 1, dim) embeddings.
  void add(const Tensor& embeddings, std::span<const std::int64_t> ids, std::span<const Label> labels,
           std::span<const std::string> paths = {}) {
    if (embeddings.dimension(0) != static_cast<Index>(ids.size()) ||
        embeddings.size() != static_cast<Index>(ids.size()) * dim())
      throw ShapeError("Catalog::add: embeddings of dimensions " + dims_string(embeddings) + " do not hold " +
                       std::to_string(ids.size()) + " vectors of " + std::to_string(dim()) + " values");
    add(embeddings.data(), ids, labels, paths);
  }

  /// Removes the items with these ids (unknown ids are a UsageError, and
  /// nothing is removed); the rest keep their order, packed together.
  void remove(std::span<const std::int64_t> ids) {
    std::vector<char> drop(ids_.size(), 0);
    for (const std::int64_t id : ids) {
      const Index i = find(id);
      if (i < 0) throw UsageError("Catalog::remove: no item has id " + std::to_string(id));
      drop[static_cast<std::size_t>(i)] = 1;
    }
    const std::size_t d = static_cast<std::size_t>(dim());
    std::size_t kept = 0;
    for (std::size_t i = 0; i < ids_.size(); ++i) {
      if (drop[i]) continue;
      ids_[kept] = ids_[i];
      labels_[kept] = labels_[i];
      paths_[kept] = std::move(paths_[i]);
      if (info_.encoding == VectorEncoding::Int8) {
        std::copy_n(codes_.begin() + static_cast<std::ptrdiff_t>(i * d), d, codes_.begin() + static_cast<std::ptrdiff_t>(kept * d));
        scales_[kept] = scales_[i];
      } else {
        std::copy_n(floats_.begin() + static_cast<std::ptrdiff_t>(i * d), d, floats_.begin() + static_cast<std::ptrdiff_t>(kept * d));
      }
      ++kept;
    }
    ids_.resize(kept);
    labels_.resize(kept);
    paths_.resize(kept);
    (info_.encoding == VectorEncoding::Int8 ? codes_.resize(kept * d) : floats_.resize(kept * d));
    scales_.resize(info_.encoding == VectorEncoding::Int8 ? kept : 0);
    position_.clear();
    for (std::size_t i = 0; i < kept; ++i) position_[ids_[i]] = static_cast<Index>(i);
  }

  /// Rows [begin, begin + count) as floats into out (count * dim values).
  /// float32 catalogs: a pointer into the catalog itself, out untouched.
  const float* decode_rows(Index begin, Index count, std::vector<float>& out) const {
    const std::size_t d = static_cast<std::size_t>(dim()), b = static_cast<std::size_t>(begin);
    if (info_.encoding == VectorEncoding::Float32) return floats_.data() + b * d;
    out.resize(static_cast<std::size_t>(count) * d);
    for (std::size_t r = 0; r < static_cast<std::size_t>(count); ++r) {
      const float s = scales_[b + r];
      const std::int8_t* c = codes_.data() + (b + r) * d;
      for (std::size_t j = 0; j < d; ++j) out[r * d + j] = static_cast<float>(c[j]) * s;
    }
    return out.data();
  }
  /// Every vector as floats, (size, dim) row-major.
  std::vector<float> all_vectors() const {
    std::vector<float> scratch;
    const float* p = decode_rows(0, size(), scratch);
    return std::vector<float>(p, p + size() * dim());
  }

  /// Bytes the items take in memory (vectors, ids, labels, paths).
  std::size_t memory_bytes() const {
    std::size_t paths = 0;
    for (const std::string& p : paths_) paths += p.size();
    return floats_.size() * sizeof(float) + codes_.size() + scales_.size() * sizeof(float) +
           ids_.size() * (sizeof(std::int64_t) + sizeof(Label)) + paths;
  }

  // Raw storage, for the file format.
  std::span<const float> float_storage() const { return floats_; }
  std::span<const std::int8_t> code_storage() const { return codes_; }
  std::span<const float> scale_storage() const { return scales_; }

  /// A catalog from its stored parts, as a file holds them (catalog_file.hpp):
  /// floats (float32) or codes and scales (int8). DataError naming source
  /// when the sizes disagree, an id repeats or a vector is not of unit length.
  static Catalog from_storage(CatalogInfo info, std::vector<std::int64_t> ids, std::vector<Label> labels,
                              std::vector<std::string> paths, std::vector<float> floats, std::vector<std::int8_t> codes,
                              std::vector<float> scales, const std::string& source) {
    Catalog c(std::move(info));
    const std::size_t n = ids.size(), d = static_cast<std::size_t>(c.dim());
    const bool int8 = c.encoding() == VectorEncoding::Int8;
    if (labels.size() != n || paths.size() != n || floats.size() != (int8 ? 0 : n * d) ||
        codes.size() != (int8 ? n * d : 0) || scales.size() != (int8 ? n : 0))
      throw DataError(source + ": the catalog's parts disagree in size");
    for (std::size_t i = 0; i < n; ++i)
      if (!c.position_.emplace(ids[i], static_cast<Index>(i)).second)
        throw DataError(source + ": id " + std::to_string(ids[i]) + " appears twice; ids must be unique");
    for (std::size_t i = 0; i < n; ++i) {
      double squares = 0.0;
      if (int8) {
        for (std::size_t j = 0; j < d; ++j) squares += static_cast<double>(codes[i * d + j]) * codes[i * d + j];
        squares *= static_cast<double>(scales[i]) * scales[i];
      } else {
        squares = sum_of_squares(floats.data() + i * d, c.dim());
      }
      if (const std::string problem = unit_length_problem(squares, c.dim()); !problem.empty())
        throw DataError(source + ": the vector of item " + std::to_string(ids[i]) + " " + problem);
    }
    c.ids_ = std::move(ids);
    c.labels_ = std::move(labels);
    c.paths_ = std::move(paths);
    c.floats_ = std::move(floats);
    c.codes_ = std::move(codes);
    c.scales_ = std::move(scales);
    return c;
  }

  /// The same items with their vectors in another encoding.
  Catalog with_encoding(VectorEncoding e) const {
    CatalogInfo info = info_;
    info.encoding = e;
    Catalog c(info);
    const std::vector<float> v = all_vectors();
    c.add(v.data(), ids_, labels_, paths_);
    return c;
  }

 private:
  void append_vectors(const float* v, Index n) {
    const std::size_t d = static_cast<std::size_t>(dim()), count = static_cast<std::size_t>(n);
    if (info_.encoding == VectorEncoding::Float32) {
      floats_.insert(floats_.end(), v, v + count * d);
      return;
    }
    for (std::size_t r = 0; r < count; ++r) {
      const float* row = v + r * d;
      float top = 0.0f;
      for (std::size_t j = 0; j < d; ++j) top = std::max(top, std::abs(row[j]));
      const float scale = top > 0.0f ? top / 127.0f : 1.0f;
      scales_.push_back(scale);
      for (std::size_t j = 0; j < d; ++j)
        codes_.push_back(static_cast<std::int8_t>(std::clamp(std::lround(row[j] / scale), -127L, 127L)));
    }
  }

  CatalogInfo info_;
  std::vector<std::int64_t> ids_;
  std::vector<Label> labels_;
  std::vector<std::string> paths_;
  std::vector<float> floats_;       // (size, dim), float32 catalogs
  std::vector<std::int8_t> codes_;  // (size, dim), int8 catalogs
  std::vector<float> scales_;       // (size), int8 catalogs
  std::unordered_map<std::int64_t, Index> position_;  // id -> row
};

}  // namespace loom::search
