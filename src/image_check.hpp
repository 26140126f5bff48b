#pragma once
// Checks shared by the image functions (internal to the library).

#include <cstddef>
#include <string>

#include "loom/error.hpp"
#include "loom/image/image.hpp"

namespace loom::detail {

/// Throws UsageError, naming what, unless image has a size, 1 to 4 channels and
/// exactly width * height * channels bytes.
inline void check_image(const Image& image, const std::string& what) {
  if (image.width < 1 || image.height < 1 || image.channels < 1 || image.channels > 4)
    throw UsageError(what + ": the image is empty or malformed (" + std::to_string(image.width) + " x " +
                     std::to_string(image.height) + ", " + std::to_string(image.channels) + " channels)");
  const auto expected = static_cast<std::size_t>(image.width) * static_cast<std::size_t>(image.height) *
                        static_cast<std::size_t>(image.channels);
  if (image.pixels.size() != expected)
    throw UsageError(what + ": the image holds " + std::to_string(image.pixels.size()) + " bytes, expected " +
                     std::to_string(image.width) + " x " + std::to_string(image.height) + " x " +
                     std::to_string(image.channels) + " = " + std::to_string(expected));
}

}  // namespace loom::detail
