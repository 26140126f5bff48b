#pragma once
// IDX files, the format of MNIST and Fashion-MNIST: a big-endian header, then
// the elements in row-major order.
//
//   bytes 0-1   zero
//   byte  2     element type; loom reads only 0x08, unsigned bytes
//   byte  3     rank r (1 for labels, 3 for images)
//   4r bytes    the r dimensions, big-endian uint32, outermost first: (N) or (N, rows, cols)
//   then        prod(dims) elements
//
// So labels start with magic 2049 (0x00000801) and images with 2051 (0x00000803).
// Files may be raw or gzip-compressed; read_idx tells them apart by their first
// bytes (gzip starts with 1f 8b, IDX with 00 00), not by their names. parse_idx
// reads the same from memory; both go through one parser.
//
// The header is distrusted: it is checked against the limits and the file size
// before the payload is allocated, and a .gz file is never inflated past the
// declared size + 1 byte, so a corrupt header or a gzip bomb costs an error,
// not memory.
//
// Thread safety: free functions without shared state; safe from many threads.

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "loom/tensor.hpp"

namespace loom {

/// The contents of one IDX file.
struct IdxArray {
  std::vector<Index> dims;          // outermost first: (N) for labels, (N, rows, cols) for images
  std::vector<std::uint8_t> bytes;  // prod(dims) elements, row-major

  int rank() const { return static_cast<int>(dims.size()); }
  /// Number of items along the first dimension (images, labels).
  Index count() const { return dims.empty() ? 0 : dims[0]; }
};

struct IdxReadOptions {
  /// The rank the file must have: 1 for labels, 3 for images. Any rank when empty.
  std::optional<int> rank;
  /// Headers that declare more payload bytes than this are refused before any
  /// allocation: such a header is far more likely corrupt than real.
  std::size_t max_bytes = std::size_t{1} << 31;
};

/// Reads an unsigned-byte IDX file, raw or gzip-compressed.
/// Throws DataError (naming the path) when the file is missing, malformed,
/// truncated, longer than its header declares, or declares more than
/// options.max_bytes; IoError when the operating system fails to read it.
IdxArray read_idx(const std::filesystem::path& path, const IdxReadOptions& options = {});

/// Parses the bytes of an unsigned-byte IDX file held in memory, raw or
/// gzip-compressed, with the same checks and messages as read_idx; `source`
/// names the bytes in those messages (a path, a URL, "<memory>").
/// Throws DataError when the bytes are malformed, as read_idx does.
IdxArray parse_idx(std::span<const std::uint8_t> bytes, const std::string& source,
                   const IdxReadOptions& options = {});

/// Writes an unsigned-byte IDX file, gzip-compressed when path ends in ".gz".
/// Throws UsageError when bytes.size() is not the product of dims, IoError on write failure.
void write_idx(const std::filesystem::path& path, const IdxArray& array);

namespace detail {
/// Writes bytes to path as a single gzip member. For tests that need .gz files
/// whose contents are not valid IDX (truncated, too long), which write_idx refuses to make.
void write_gz(const std::filesystem::path& path, std::span<const std::uint8_t> bytes);
}  // namespace detail

}  // namespace loom
