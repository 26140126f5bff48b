#pragma once
// CRC-32 (the zlib / PNG / gzip polynomial), as model files use it to detect
// corruption. Exposed so tools and tests can build or repair files.
//
// Thread safety: a pure function.

#include <cstdint>
#include <span>

namespace loom {

std::uint32_t crc32(std::span<const std::uint8_t> bytes);

}  // namespace loom
