#pragma once
// Little-endian byte encoding for loom's binary files (model files). The
// reader checks every read against the bytes that remain, so a count or size
// read from a hostile file is validated before anything is allocated for it.
// Internal (namespace detail): public layer code sees it through
// LayerConfigWriter and LayerConfigReader (io/layer_config.hpp).

#include <bit>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include <Eigen/Core>

#include "loom/error.hpp"

namespace loom::detail {

static_assert(std::endian::native == std::endian::little, "loom's file formats assume a little-endian machine");

class ByteWriter {
 public:
  template <typename T>
    requires std::is_arithmetic_v<T>
  void put(T v) {
    const auto* p = reinterpret_cast<const std::uint8_t*>(&v);
    bytes_.insert(bytes_.end(), p, p + sizeof v);
  }
  void put_string(const std::string& s) {
    put(static_cast<std::uint32_t>(s.size()));
    bytes_.insert(bytes_.end(), s.begin(), s.end());
  }
  void put_floats(std::span<const float> v) {
    const auto* p = reinterpret_cast<const std::uint8_t*>(v.data());
    bytes_.insert(bytes_.end(), p, p + v.size_bytes());
  }
  void put_bytes(std::span<const std::uint8_t> b) { bytes_.insert(bytes_.end(), b.begin(), b.end()); }
  /// Overwrites a value written earlier at offset (a length known only later).
  template <typename T>
  void patch(std::size_t offset, T v) {
    std::memcpy(bytes_.data() + offset, &v, sizeof v);
  }
  std::size_t size() const { return bytes_.size(); }
  std::vector<std::uint8_t>& bytes() { return bytes_; }

 private:
  std::vector<std::uint8_t> bytes_;
};

class ByteReader {
 public:
  /// bytes[begin, end) of a file called source; offsets in errors are file offsets.
  ByteReader(std::span<const std::uint8_t> bytes, std::string source, std::size_t base = 0)
      : bytes_(bytes), source_(std::move(source)), base_(base) {}

  std::size_t remaining() const { return bytes_.size() - pos_; }
  std::size_t offset() const { return base_ + pos_; }
  bool done() const { return pos_ == bytes_.size(); }
  /// Fails unless every byte has been read: what (e.g. "ARCH section") has N bytes left over.
  void expect_end(const std::string& what) const {
    if (!done()) fail(what + " has " + std::to_string(remaining()) + " bytes left over");
  }

  template <typename T>
    requires std::is_arithmetic_v<T>
  T get(const char* what) {
    need(sizeof(T), what);
    T v;
    std::memcpy(&v, bytes_.data() + pos_, sizeof v);
    pos_ += sizeof v;
    return v;
  }
  std::string get_string(const char* what, std::size_t max_length) {
    const auto n = get<std::uint32_t>(what);
    if (n > max_length) fail(std::string(what) + " is " + std::to_string(n) + " bytes long, more than the " +
                             std::to_string(max_length) + " allowed");
    need(n, what);
    std::string s(reinterpret_cast<const char*>(bytes_.data() + pos_), n);
    pos_ += n;
    return s;
  }
  /// n floats into out (resized); n is checked against what remains first.
  template <typename Vector>
  void get_floats(Vector& out, std::uint64_t n, const char* what) {
    need_items(n, sizeof(float), what);
    out.resize(static_cast<Eigen::Index>(n));
    if (n > 0) std::memcpy(out.data(), bytes_.data() + pos_, n * sizeof(float));  // an empty vector's data() may be null
    pos_ += n * sizeof(float);
  }
  std::span<const std::uint8_t> get_bytes(std::uint64_t n, const char* what) {
    need_items(n, 1, what);
    const auto b = bytes_.subspan(pos_, n);
    pos_ += n;
    return b;
  }
  /// Checks that count records of at least item_size bytes each can still follow.
  void need_items(std::uint64_t count, std::size_t item_size, const char* what) const {
    if (count > remaining() / item_size)
      fail(std::string(what) + ": " + std::to_string(count) + " items of " + std::to_string(item_size) +
           " bytes claimed, but only " + std::to_string(remaining()) + " bytes remain (truncated or corrupt)");
  }

  [[noreturn]] void fail(const std::string& why) const {
    throw DataError(source_ + ": " + why + " (at byte offset " + std::to_string(offset()) + ")");
  }

 private:
  void need(std::size_t n, const char* what) const {
    if (n > remaining())
      fail(std::string("truncated: ") + what + " needs " + std::to_string(n) + " bytes, " +
           std::to_string(remaining()) + " remain");
  }

  std::span<const std::uint8_t> bytes_;
  std::string source_;
  std::size_t base_;
  std::size_t pos_ = 0;
};

}  // namespace loom::detail
