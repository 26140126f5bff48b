#pragma once
// A layer's options in a model file: what Layer::write_config writes and the
// registry's reader for that kind (layer_registry.hpp) reads back, field by
// field, in the same order.
//
//   void write_config(loom::LayerConfigWriter& w) const override {
//     w.put_dim(units_);
//     w.put_f32(alpha_);
//   }
//   static std::unique_ptr<loom::Layer> from_config(loom::LayerConfigReader& r) {
//     const loom::Index units = r.get_dim("MyLayer units");
//     const float alpha = r.get_f32("MyLayer alpha");
//     return std::make_unique<MyLayer>(units, alpha);
//   }
//
// Numbers are little-endian, as everything in a model file
// (docs/model-format.md). The reader checks every read against the bytes
// that remain and every size against limits, and fails with a DataError that
// names the file, the field and the byte offset: a hostile or truncated file
// never reaches a layer's constructor with a wild value. A layer with
// parameters claims them (claim_params) before it is built, so a file cannot
// make the loader allocate more than it has bytes for.
//
// Composite layers write their sublayers with put_layer and read them with
// get_layer, which goes through the registry again.
//
// Thread safety: a writer or reader belongs to one save or load, on one thread.

#include <cstdint>
#include <algorithm>
#include <initializer_list>
#include <limits>
#include <memory>
#include <string>

#include "loom/activation.hpp"
#include "loom/io/byte_io.hpp"
#include "loom/layer.hpp"
#include "loom/layers/window.hpp"

namespace loom {

class LayerConfigWriter {
 public:
  explicit LayerConfigWriter(detail::ByteWriter& w) : w_(w) {}

  void put_u8(std::uint8_t v) { w_.put(v); }
  void put_u32(std::uint32_t v) { w_.put(v); }
  void put_u64(std::uint64_t v) { w_.put(v); }
  void put_f32(float v) { w_.put(v); }
  void put_f64(double v) { w_.put(v); }
  void put_string(const std::string& s) { w_.put_string(s); }
  /// A size or count (get_dim, get_count read it back).
  void put_dim(Index v) { w_.put(static_cast<std::uint64_t>(v)); }
  void put_size2(Size2 s) {
    put_dim(s.h);
    put_dim(s.w);
  }
  void put_padding(Padding p) { put_u8(p == Padding::Valid ? 0 : 1); }
  void put_activation(Activation a) { put_u8(a == Activation::None ? 0 : a == Activation::ReLU ? 1 : 2); }

  /// A whole layer: its kind, its name, then its write_config. Defined in
  /// src/layer_registry.cpp; UsageError when the kind is not registered (a
  /// file could not be loaded back).
  void put_layer(const Layer& layer);

 private:
  detail::ByteWriter& w_;
};

/// How many parameters the layers read so far will allocate, against what the file can hold.
struct ParamBudget {
  std::uint64_t limit = 0;  // parameters: the file's bytes / sizeof(float)
  std::uint64_t claimed = 0;
};

class LayerConfigReader {
 public:
  /// Sizes and counts read by get_dim and get_count are at most this (16M).
  static constexpr std::uint64_t kMaxDim = std::uint64_t{1} << 24;

  LayerConfigReader(detail::ByteReader& r, Shape input, ParamBudget& budget)
      : r_(r), input_(std::move(input)), budget_(budget) {}

  /// The per-sample shape the layer being read will be built on.
  const Shape& input_shape() const { return input_; }
  /// The name of the layer being read (for messages).
  const std::string& layer_name() const { return name_; }

  std::uint8_t get_u8(const char* what) { return r_.get<std::uint8_t>(what); }
  std::uint32_t get_u32(const char* what) { return r_.get<std::uint32_t>(what); }
  std::uint64_t get_u64(const char* what) { return r_.get<std::uint64_t>(what); }
  float get_f32(const char* what) { return r_.get<float>(what); }
  double get_f64(const char* what) { return r_.get<double>(what); }
  std::string get_string(const char* what, std::size_t max_length = 1024) { return r_.get_string(what, max_length); }

  /// A size in [1, kMaxDim].
  Index get_dim(const char* what) {
    const std::uint64_t v = get_u64(what);
    if (v == 0 || v > kMaxDim) fail(std::string(what) + " " + std::to_string(v) + " is outside [1, " + std::to_string(kMaxDim) + "]");
    return static_cast<Index>(v);
  }
  /// A count in [0, kMaxDim].
  Index get_count(const char* what) {
    const std::uint64_t v = get_u64(what);
    if (v > kMaxDim) fail(std::string(what) + " " + std::to_string(v) + " is more than " + std::to_string(kMaxDim));
    return static_cast<Index>(v);
  }
  /// Two sizes in [0, kMaxDim] (0 may mean "default", as pooling strides).
  Size2 get_size2(const char* what) {
    const std::uint64_t h = get_u64(what), w = get_u64(what);
    if (h > kMaxDim || w > kMaxDim) fail(std::string(what) + " (" + std::to_string(h) + ", " + std::to_string(w) + ") is too large");
    return {static_cast<Index>(h), static_cast<Index>(w)};
  }
  Padding get_padding(const char* what) {
    const std::uint8_t c = get_u8(what);
    if (c > 1) fail("unknown padding code " + std::to_string(c));
    return c == 0 ? Padding::Valid : Padding::Same;
  }
  Activation get_activation(const char* what) {
    const std::uint8_t c = get_u8(what);
    if (c > 2) fail("unknown activation code " + std::to_string(c));
    return c == 0 ? Activation::None : c == 1 ? Activation::ReLU : Activation::Softmax;
  }

  /// Records that the layer will allocate (product of factors + 1) * out
  /// parameters (a kernel and a bias), or `count` with claim_param_count;
  /// fails when the layers read so far would hold more parameters than the
  /// file has bytes for. Call it before constructing the layer.
  void claim_params(std::initializer_list<Index> factors, Index out) {
    constexpr auto kMax = static_cast<unsigned __int128>(std::numeric_limits<std::uint64_t>::max());
    unsigned __int128 per_output = 1;
    for (const Index f : factors) per_output = std::min(per_output * static_cast<std::uint64_t>(f), kMax);
    claim_param_count(static_cast<std::uint64_t>(std::min((per_output + 1) * static_cast<std::uint64_t>(out), kMax)));
  }
  void claim_param_count(std::uint64_t count) {
    if (count > budget_.limit - budget_.claimed)  // claimed never exceeds limit
      fail("layer " + name_ + " would hold more parameters than the file has bytes for");
    budget_.claimed += count;
  }

  /// A sublayer written with put_layer, read through the registry, to be
  /// built on per-sample `input`. Defined in src/layer_registry.cpp.
  std::unique_ptr<Layer> get_layer(const Shape& input);

  [[noreturn]] void fail(const std::string& why) const { r_.fail(why); }

 private:
  friend std::unique_ptr<Layer> read_layer(detail::ByteReader&, const Shape&, ParamBudget&);
  detail::ByteReader& r_;
  Shape input_;
  ParamBudget& budget_;
  std::string name_;
};

}  // namespace loom
