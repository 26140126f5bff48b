#include "loom/io/crc32.hpp"

#include <zlib.h>

#include <algorithm>

namespace loom {

std::uint32_t crc32(std::span<const std::uint8_t> bytes) {
  uLong crc = ::crc32(0L, Z_NULL, 0);
  for (std::size_t done = 0; done < bytes.size();) {  // zlib counts in uInt
    const std::size_t n = std::min<std::size_t>(bytes.size() - done, std::size_t{1} << 30);
    crc = ::crc32(crc, bytes.data() + done, static_cast<uInt>(n));
    done += n;
  }
  return static_cast<std::uint32_t>(crc);
}

}  // namespace loom
