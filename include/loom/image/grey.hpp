#pragma once
// Colour to grey (and grey to colour), and transparency onto a matte.
//
//   grey = 0.299 R + 0.587 G + 0.114 B     (ITU-R BT.601 luma, as in JPEG)
//   out  = a * grey + (1 - a) * matte      (a = alpha / 255)
//
// Thread safety: free function without shared state; safe from many threads.

#include <cstdint>

#include "loom/image/image.hpp"

namespace loom {

/// A one-channel copy of image: luma of RGB, alpha composited over a matte of
/// the given grey level (white by default: a cut-out product on a white page).
/// Throws UsageError on an empty or inconsistent image.
Image to_grey(const Image& image, std::uint8_t matte = 255);

/// A three-channel copy of image: grey repeated in R, G and B, alpha
/// composited over the same matte. Throws UsageError like to_grey.
Image to_rgb(const Image& image, std::uint8_t matte = 255);

}  // namespace loom
