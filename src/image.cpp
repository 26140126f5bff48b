// Image construction, decoding through stb_image and encoding through
// stb_image_write. The stb implementations are compiled in Debian's libstb
// (package libstb-dev); this file only includes their declarations.

#include "loom/image/image.hpp"

#include <stb_image.h>
#include <stb_image_write.h>

#include <cerrno>
#include <climits>
#include <cstring>
#include <fstream>
#include <iterator>
#include <memory>

#include "image_check.hpp"
#include "read_whole_file.hpp"
#include "stb_guard.hpp"
#include "loom/error.hpp"
#include "loom/image/exif_orientation.hpp"

namespace loom {
namespace {

std::string size_text(std::int64_t w, std::int64_t h) { return std::to_string(w) + " x " + std::to_string(h); }

bool within_limits(std::int64_t w, std::int64_t h) {
  return w >= 1 && h >= 1 && w <= max_image_side && h <= max_image_side && w * h <= max_image_pixels;
}

// What a file too large to decode is too large for (see max_file_bytes).
constexpr const char* kAnyImage = "any image within the limits";

// Why the last stb call on this thread failed (stb keeps the reason thread-local).
std::string stb_reason() {
  const char* r = stbi_failure_reason();
  return r != nullptr ? r : "unknown reason";
}

// A file larger than this cannot hold an image within the pixel limit, even
// uncompressed (4 bytes a pixel, plus headers): it is refused before it is read.
constexpr std::uintmax_t max_file_bytes = static_cast<std::uintmax_t>(max_image_pixels) * 4 + (1u << 20);

// stb_image_write hands the encoded file over in pieces; collect them.
void append_bytes(void* context, void* data, int size) {
  auto* out = static_cast<std::vector<std::uint8_t>*>(context);
  const auto* p = static_cast<const std::uint8_t*>(data);
  out->insert(out->end(), p, p + size);
}

// Writes through an ofstream rather than stb's fopen, so the error can say why (errno).
void write_file(const std::filesystem::path& path, const std::vector<std::uint8_t>& bytes, const char* what) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) throw IoError(std::string(what) + ": cannot create " + path.string() + ": " + std::strerror(errno));
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  out.close();
  if (!out) throw IoError(std::string(what) + ": writing " + path.string() + " failed: " + std::strerror(errno));
}

}  // namespace

Image::Image(int width_, int height_, int channels_, std::uint8_t fill) {
  if (width_ < 1 || height_ < 1 || width_ > max_image_side || height_ > max_image_side)
    throw UsageError("Image: width and height must be in [1, " + std::to_string(max_image_side) + "], got " +
                     size_text(width_, height_));
  if (std::int64_t{width_} * height_ > max_image_pixels)
    throw UsageError("Image: " + size_text(width_, height_) + " is more than " + std::to_string(max_image_pixels) +
                     " pixels");
  if (channels_ < 1 || channels_ > 4)
    throw UsageError("Image: channels must be 1 (grey), 2 (grey + alpha), 3 (RGB) or 4 (RGBA), got " +
                     std::to_string(channels_));
  width = width_;
  height = height_;
  channels = channels_;
  pixels.assign(static_cast<std::size_t>(width) * static_cast<std::size_t>(height) * static_cast<std::size_t>(channels),
                fill);
}

Image decode_image(std::span<const std::uint8_t> bytes, const std::string& source) {
  if (bytes.empty()) throw DataError(source + ": empty input (0 bytes), not an image");
  if (bytes.size() > max_file_bytes || bytes.size() > static_cast<std::size_t>(INT_MAX))
    throw DataError(source + ": " + std::to_string(bytes.size()) + " bytes is more than " + kAnyImage +
                    " can take (" + std::to_string(max_file_bytes) + " bytes)");
  const auto* data = reinterpret_cast<const stbi_uc*>(bytes.data());
  const int len = static_cast<int>(bytes.size());

  detail::refuse_stb_crashers(bytes, source);  // inputs that would reach a known bug of this stb_image

  // The header alone first: refuse a hostile size before stb allocates for it.
  int w = 0, h = 0, c = 0;
  if (stbi_info_from_memory(data, len, &w, &h, &c) == 0)
    throw DataError(source + ": not a decodable image (" + stb_reason() + ")");
  if (!within_limits(w, h))
    throw DataError(source + ": the image claims to be " + size_text(w, h) + " pixels; loom reads at most " +
                    std::to_string(max_image_side) + " on a side and " + std::to_string(max_image_pixels) +
                    " pixels in all");

  // This thread's settings, whatever the rest of the program set globally.
  stbi_set_flip_vertically_on_load_thread(0);
  stbi_convert_iphone_png_to_rgb_thread(0);
  std::unique_ptr<stbi_uc, void (*)(void*)> decoded(stbi_load_from_memory(data, len, &w, &h, &c, 0), stbi_image_free);
  if (!decoded) throw DataError(source + ": cannot decode the image (" + stb_reason() + ")");
  if (!within_limits(w, h) || c < 1 || c > 4)
    throw DataError(source + ": the decoder returned " + size_text(w, h) + " pixels with " + std::to_string(c) +
                    " channels, outside the limits");

  Image image;
  image.width = w;
  image.height = h;
  image.channels = c;
  const std::size_t n = static_cast<std::size_t>(w) * static_cast<std::size_t>(h) * static_cast<std::size_t>(c);
  image.pixels.assign(decoded.get(), decoded.get() + n);
  decoded.reset();
  // A phone's portrait JPEG is stored sideways with a tag saying so; stb ignores it.
  const int orientation = exif_orientation(bytes);
  if (orientation != 1) return apply_orientation(image, orientation);
  return image;  // moved, not copied (a ?: with the call above would copy it)
}

Image read_image(const std::filesystem::path& path) {
  return decode_image(detail::read_whole_file(path, max_file_bytes, kAnyImage), path.string());
}

void write_png(const std::filesystem::path& path, const Image& image) {
  detail::check_image(image, "write_png: " + path.string());
  std::vector<std::uint8_t> bytes;
  if (stbi_write_png_to_func(append_bytes, &bytes, image.width, image.height, image.channels, image.pixels.data(),
                             image.width * image.channels) == 0)
    throw IoError("write_png: " + path.string() + ": the PNG encoder failed");
  write_file(path, bytes, "write_png");
}

void write_jpeg(const std::filesystem::path& path, const Image& image, int quality) {
  detail::check_image(image, "write_jpeg: " + path.string());
  if (quality < 1 || quality > 100)
    throw UsageError("write_jpeg: " + path.string() + ": quality must be in [1, 100], got " + std::to_string(quality));
  std::vector<std::uint8_t> bytes;
  if (stbi_write_jpg_to_func(append_bytes, &bytes, image.width, image.height, image.channels, image.pixels.data(),
                             quality) == 0)
    throw IoError("write_jpeg: " + path.string() + ": the JPEG encoder failed");
  write_file(path, bytes, "write_jpeg");
}

}  // namespace loom
