#pragma once
// Fashion-MNIST images dressed up as product photos, for the tests and
// benchmarks of image-file inputs (preprocessing, visual search): the
// garment in colour over a background, enlarged, with uneven margins.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <span>

#include "loom/data/dataset.hpp"
#include "loom/image/image.hpp"
#include "loom/image/resize.hpp"

namespace loom::testing {

struct Colour {
  std::uint8_t r, g, b;
};

// Fashion-MNIST sample i as a photo: the garment (intensity v) in colour
// garment over background at opacity v / 255, enlarged `scale` times with
// linear interpolation, on a canvas with uneven margins.
inline Image photo_of(std::span<const std::uint8_t> pixels28, int scale, int left, int top, int right, int bottom,
                      Colour garment, Colour background) {
  Image small(28, 28, 1);
  std::copy(pixels28.begin(), pixels28.end(), small.pixels.begin());
  const Image big = resize(small, 28 * scale, 28 * scale);
  Image photo(big.width + left + right, big.height + top + bottom, 3);
  for (int y = 0; y < photo.height; ++y)
    for (int x = 0; x < photo.width; ++x) {
      const bool inside = x >= left && x < left + big.width && y >= top && y < top + big.height;
      const float a = inside ? big.at(x - left, y - top) / 255.0f : 0.0f;
      photo.at(x, y, 0) = static_cast<std::uint8_t>(std::lround(background.r + a * (garment.r - background.r)));
      photo.at(x, y, 1) = static_cast<std::uint8_t>(std::lround(background.g + a * (garment.g - background.g)));
      photo.at(x, y, 2) = static_cast<std::uint8_t>(std::lround(background.b + a * (garment.b - background.b)));
    }
  return photo;
}

/// The usual photo of a catalog: a dark navy garment on a warm light background, 6x larger.
inline Image light_background_photo(std::span<const std::uint8_t> pixels28) {
  return photo_of(pixels28, 6, 17, 9, 31, 23, {30, 40, 90}, {236, 228, 214});
}

/// Sample i of a Fashion-MNIST data set as that photo.
inline Image light_background_photo(const Dataset& d, Index i) { return light_background_photo(d.image_bytes(i)); }

}  // namespace loom::testing
