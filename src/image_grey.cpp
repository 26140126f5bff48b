#include "loom/image/grey.hpp"

#include <cmath>

#include "image_check.hpp"

namespace loom {

Image to_grey(const Image& image, std::uint8_t matte) {
  detail::check_image(image, "to_grey");
  const int c = image.channels;
  if (c == 1) return image;
  Image out(image.width, image.height, 1);
  const std::uint8_t* p = image.pixels.data();
  for (std::uint8_t& g : out.pixels) {
    const float luma = c >= 3 ? 0.299f * p[0] + 0.587f * p[1] + 0.114f * p[2] : static_cast<float>(p[0]);
    const float a = image.has_alpha() ? p[c - 1] / 255.0f : 1.0f;
    g = static_cast<std::uint8_t>(std::lround(a * luma + (1.0f - a) * matte));
    p += c;
  }
  return out;
}

}  // namespace loom
