#pragma once
// For the fuzzers of loom's framed files (model files, catalogs: magic,
// version, content length, content, CRC32): each input is tried as it is,
// which exercises the frame checks, and with its content length and CRC32
// repaired, so that mutations reach the decoder behind them.

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

#include "loom/io/crc32.hpp"

namespace loom::fuzzing {

inline constexpr std::size_t kFrameHeaderBytes = 24;  // magic (8), version (4), reserved (4), content length (8)
inline constexpr std::size_t kFrameCrcBytes = 4;      // CRC32 of everything before it, little-endian

/// Calls one(bytes) on the input, then on a copy with the frame repaired (when it is long enough to have one).
template <typename One>
void as_given_and_repaired(const std::uint8_t* data, std::size_t size, One&& one) {
  one(std::span<const std::uint8_t>(data, size));
  if (size < kFrameHeaderBytes + kFrameCrcBytes) return;
  std::vector<std::uint8_t> fixed(data, data + size);
  const std::uint64_t content = size - kFrameHeaderBytes - kFrameCrcBytes;
  std::memcpy(fixed.data() + 16, &content, sizeof content);
  const std::uint32_t crc = crc32(std::span(fixed).first(size - kFrameCrcBytes));
  std::memcpy(fixed.data() + size - kFrameCrcBytes, &crc, sizeof crc);
  one(std::span<const std::uint8_t>(fixed));
}

}  // namespace loom::fuzzing
