#pragma once
// Altering a model file's bytes in tests: a value written at an offset, a
// section's payload found by its tag, and the CRC rewritten so that the
// altered content reaches the decoder's own checks.

#include <catch2/catch.hpp>

#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

#include "loom/io/crc32.hpp"

namespace loom::testing {

// Rewrites the trailing CRC so a deliberately altered content gets past the
// CRC check and reaches the decoder's own validation.
inline void fix_crc(std::vector<std::uint8_t>& b) {
  const std::uint32_t c = crc32(std::span<const std::uint8_t>(b).first(b.size() - 4));
  std::memcpy(b.data() + b.size() - 4, &c, 4);
}

template <typename T>
inline void poke(std::vector<std::uint8_t>& b, std::size_t at, T v) {
  std::memcpy(b.data() + at, &v, sizeof v);
}

// Offset of the first byte of a section's payload, found by its tag.
inline std::size_t payload_of(const std::vector<std::uint8_t>& b, const char* tag) {
  for (std::size_t i = 24; i + 12 <= b.size(); ++i)
    if (std::memcmp(b.data() + i, tag, 4) == 0) return i + 12;
  FAIL("no section " << tag);
  return 0;
}

}  // namespace loom::testing
