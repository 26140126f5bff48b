#pragma once
// Image: 8-bit pixels in memory, and reading/writing them as files.
//
//   pixels  (height, width, channels) uint8, row-major, channels interleaved
//   channels: 1 grey, 2 grey + alpha, 3 RGB, 4 RGBA
//
// Reading takes anything stb_image decodes (PNG, JPEG, BMP, GIF's first frame,
// TGA, PSD, PNM, HDR, PIC), 16-bit files reduced to 8 bits, in the channels the
// file stores, turned upright as a JPEG's EXIF orientation tag says
// (exif_orientation.hpp). Writing makes PNG (lossless) or JPEG (lossy).
//
// Decoding distrusts the file: its header is read first (stbi_info_from_memory)
// and an image with a side above max_image_side or more than max_image_pixels
// pixels is refused before its pixels are allocated, so a 20-byte file that
// claims to be 100000 x 100000 costs an error, not 40 GB.
//
// Thread safety: free functions; safe from many threads at once. They never
// touch stb_image's process-wide settings: every decode sets the calling
// thread's own vertical-flip and iPhone-PNG flags (stb keeps them and its
// failure reason thread-local), so a stbi_set_flip_vertically_on_load(1)
// elsewhere in the program does not turn loom's images upside down.

#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

namespace loom {

/// Largest side an image may have, in pixels.
inline constexpr int max_image_side = 32768;
/// Largest number of pixels (8192 x 8192, a 64-megapixel photo) an image may have.
/// With at most 4 channels, width * height * channels stays below 2^28 and fits an int.
inline constexpr std::int64_t max_image_pixels = std::int64_t{1} << 26;

struct Image {
  int width = 0, height = 0, channels = 0;  // channels: 1 grey, 2 grey+alpha, 3 RGB, 4 RGBA
  std::vector<std::uint8_t> pixels;         // row-major, channels interleaved, size w*h*c

  Image() = default;
  /// Throws UsageError unless 1 <= width, height <= max_image_side, width * height <= max_image_pixels
  /// and 1 <= channels <= 4.
  Image(int width, int height, int channels, std::uint8_t fill = 0);

  std::uint8_t& at(int x, int y, int c = 0) { return pixels[index(x, y, c)]; }
  std::uint8_t at(int x, int y, int c = 0) const { return pixels[index(x, y, c)]; }

  bool empty() const { return pixels.empty(); }
  bool has_alpha() const { return channels == 2 || channels == 4; }

 private:
  std::size_t index(int x, int y, int c) const {
    return (static_cast<std::size_t>(y) * static_cast<std::size_t>(width) + static_cast<std::size_t>(x)) *
               static_cast<std::size_t>(channels) +
           static_cast<std::size_t>(c);
  }
};

/// Reads and decodes an image file.
/// Throws IoError when the file cannot be opened or read, DataError (naming the
/// path and stb_image's reason) when it is not a decodable image or is too large.
Image read_image(const std::filesystem::path& path);

/// Decodes an image held in memory; source names it in error messages.
/// Throws DataError on empty input, a format stb_image cannot decode, or an
/// image beyond max_image_side / max_image_pixels (checked before decoding).
Image decode_image(std::span<const std::uint8_t> bytes, const std::string& source = "<memory>");

/// Writes a PNG file with the image's channels, losslessly.
/// Throws UsageError on an empty or inconsistent image, IoError when the file cannot be written.
void write_png(const std::filesystem::path& path, const Image& image);

/// Writes a baseline JPEG file; quality in [1, 100]. The file is always colour
/// (stb_image_write writes Y, Cb, Cr), so a grey image reads back as 3 equal
/// channels. JPEG has no alpha: an alpha channel is dropped, not composited.
/// Throws like write_png, and UsageError on a bad quality.
void write_jpeg(const std::filesystem::path& path, const Image& image, int quality = 90);

}  // namespace loom
