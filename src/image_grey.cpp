#include "loom/image/grey.hpp"

#include <cmath>

#include "image_check.hpp"

namespace loom {
namespace {

// image with `channels` channels: value(p, k) for output channel k of the pixel
// at p, composited over the matte by the pixel's alpha.
template <typename Value>
Image convert_channels(const Image& image, int channels, std::uint8_t matte, const char* what, Value&& value) {
  detail::check_image(image, what);
  const int c = image.channels;
  if (c == channels) return image;
  Image out(image.width, image.height, channels);
  const std::uint8_t* p = image.pixels.data();
  for (std::size_t i = 0; i < out.pixels.size(); i += static_cast<std::size_t>(channels), p += c) {
    const float a = image.has_alpha() ? p[c - 1] / 255.0f : 1.0f;
    for (int k = 0; k < channels; ++k)
      out.pixels[i + static_cast<std::size_t>(k)] =
          static_cast<std::uint8_t>(std::lround(a * value(p, k) + (1.0f - a) * matte));
  }
  return out;
}

}  // namespace

Image to_grey(const Image& image, std::uint8_t matte) {
  const bool colour = image.channels >= 3;
  return convert_channels(image, 1, matte, "to_grey", [colour](const std::uint8_t* p, int) {
    return colour ? 0.299f * p[0] + 0.587f * p[1] + 0.114f * p[2] : static_cast<float>(p[0]);
  });
}

Image to_rgb(const Image& image, std::uint8_t matte) {
  const bool colour = image.channels >= 3;
  return convert_channels(image, 3, matte, "to_rgb",
                          [colour](const std::uint8_t* p, int k) { return static_cast<float>(p[colour ? k : 0]); });
}

}  // namespace loom
