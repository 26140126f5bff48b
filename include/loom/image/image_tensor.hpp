#pragma once
// Images to model inputs: bytes scaled to [0, 1] exactly as Dataset scales
// its samples (loom::scale_pixels, x / 255), so a model sees a file's pixels
// as it saw its training data.
//
//   one image   (H, W, C) uint8  ->  (1, H, W, C) float
//   n images    all (H, W, C)    ->  (n, H, W, C) float
//
// Thread safety: free functions without shared state; safe from many threads.

#include <span>

#include "loom/image/image.hpp"
#include "loom/tensor.hpp"

namespace loom {

/// (1, H, W, C) in [0, 1]. Throws UsageError on an empty or inconsistent image.
Tensor to_tensor(const Image& image);

/// (n, H, W, C) in [0, 1], for predicting many images in one call. Throws
/// UsageError when images is empty, ShapeError when the images differ in size or channels.
Tensor to_tensor(std::span<const Image> images);

}  // namespace loom
