#pragma once
// EXIF orientation: how a camera says its JPEG's pixels must be turned to be
// seen upright. Phones store a portrait photo as a landscape image plus this
// tag; stb_image ignores it, so decode_image applies it.
//
//   1 upright          2 mirrored left-right     3 turned 180°      4 mirrored top-bottom
//   5 transposed       6 turn 90° clockwise      7 transversed      8 turn 90° anticlockwise
//
// Thread safety: free functions without shared state; safe from many threads.

#include <cstdint>
#include <span>

#include "loom/image/image.hpp"

namespace loom {

/// The orientation tag (1 to 8) of a JPEG file's EXIF block; 1 when the bytes
/// are not a JPEG, carry no EXIF block or no valid tag. Reads only the
/// segments before the image data, every offset checked against the bytes.
int exif_orientation(std::span<const std::uint8_t> jpeg);

/// image turned and mirrored as orientation (1 to 8) says, to be seen upright:
/// orientations 5 to 8 swap width and height. Throws UsageError on another value.
Image apply_orientation(const Image& image, int orientation);

}  // namespace loom
