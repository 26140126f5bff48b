// A JPEG is a sequence of segments, FF xx then a 2-byte big-endian length that
// counts itself; EXIF lives in an APP1 (FF E1) segment that starts "Exif\0\0"
// and holds a TIFF structure: byte order "II" (little-endian) or "MM" (big),
// 42, the offset of the first directory (IFD0), whose entries are 12 bytes:
// tag, type, count, value. Orientation is tag 0x0112, type SHORT (3), count 1.

#include "loom/image/exif_orientation.hpp"

#include <algorithm>
#include <cstddef>
#include <string>

#include "image_check.hpp"
#include "loom/error.hpp"

namespace loom {
namespace {

// Reads the TIFF block tiff (bytes after "Exif\0\0"); 1 when anything is off.
int tiff_orientation(std::span<const std::uint8_t> tiff) {
  if (tiff.size() < 8) return 1;
  const bool little = tiff[0] == 'I' && tiff[1] == 'I';
  if (!little && !(tiff[0] == 'M' && tiff[1] == 'M')) return 1;
  const auto u16 = [&](std::size_t at) -> std::uint32_t {
    return little ? tiff[at] | tiff[at + 1] << 8 : tiff[at] << 8 | tiff[at + 1];
  };
  const auto u32 = [&](std::size_t at) -> std::uint32_t {
    return little ? u16(at) | u16(at + 2) << 16 : u16(at) << 16 | u16(at + 2);
  };
  if (u16(2) != 42) return 1;
  const std::size_t ifd = u32(4);
  if (ifd > tiff.size() || tiff.size() - ifd < 2) return 1;
  const std::size_t entries = u16(ifd);
  for (std::size_t i = 0; i < entries; ++i) {
    const std::size_t e = ifd + 2 + 12 * i;
    if (e + 12 > tiff.size()) return 1;
    if (u16(e) == 0x0112) {
      const std::uint32_t value = u16(e + 8);
      return u16(e + 2) == 3 && u32(e + 4) == 1 && value >= 1 && value <= 8 ? static_cast<int>(value) : 1;
    }
  }
  return 1;
}

}  // namespace

int exif_orientation(std::span<const std::uint8_t> jpeg) {
  if (jpeg.size() < 4 || jpeg[0] != 0xFF || jpeg[1] != 0xD8) return 1;
  std::size_t at = 2;
  while (at + 4 <= jpeg.size()) {
    if (jpeg[at] != 0xFF) return 1;
    const std::uint8_t marker = jpeg[at + 1];
    if (marker == 0xFF) {  // fill byte before a marker
      ++at;
      continue;
    }
    if (marker == 0xDA || marker == 0xD9) return 1;  // image data or end: no EXIF before it
    const std::size_t length = static_cast<std::size_t>(jpeg[at + 2]) << 8 | jpeg[at + 3];
    if (length < 2 || at + 2 + length > jpeg.size()) return 1;
    const auto body = jpeg.subspan(at + 4, length - 2);
    static constexpr std::uint8_t exif[] = {'E', 'x', 'i', 'f', 0, 0};
    if (marker == 0xE1 && body.size() >= 6 && std::equal(exif, exif + 6, body.begin()))
      return tiff_orientation(body.subspan(6));
    at += 2 + length;
  }
  return 1;
}

Image apply_orientation(const Image& image, int orientation) {
  if (orientation < 1 || orientation > 8)
    throw UsageError("apply_orientation: orientation must be 1 to 8, got " + std::to_string(orientation));
  if (orientation == 1) return image;
  detail::check_image(image, "apply_orientation");
  const int w = image.width, h = image.height, c = image.channels;
  const bool swap = orientation >= 5;
  Image out(swap ? h : w, swap ? w : h, c);
  for (int Y = 0; Y < out.height; ++Y)
    for (int X = 0; X < out.width; ++X) {
      int x = X, y = Y;  // where display pixel (X, Y) is stored
      switch (orientation) {
        case 2: x = w - 1 - X; break;
        case 3: x = w - 1 - X, y = h - 1 - Y; break;
        case 4: y = h - 1 - Y; break;
        case 5: x = Y, y = X; break;
        case 6: x = Y, y = h - 1 - X; break;
        case 7: x = w - 1 - Y, y = h - 1 - X; break;
        case 8: x = w - 1 - Y, y = X; break;
        default: break;
      }
      for (int k = 0; k < c; ++k) out.at(X, Y, k) = image.at(x, y, k);
    }
  return out;
}

}  // namespace loom
