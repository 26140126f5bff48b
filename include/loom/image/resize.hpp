#pragma once
// Resampling an image to another size, every channel alike.
//
// Along an axis that shrinks, each output pixel is the area-weighted mean of
// the input pixels it covers (a box filter, like OpenCV's INTER_AREA): no
// aliasing, and a 4x-enlarged image shrinks back to its original exactly.
// Along an axis that grows, values are interpolated linearly between pixel
// centres (edges repeated), which keeps tiny images smooth instead of blocky.
// Channels are resampled independently; alpha is not premultiplied.
//
// Thread safety: free functions without shared state; safe from many threads.

#include "loom/image/image.hpp"

namespace loom {

/// image resampled to width x height. Throws UsageError on an empty image or a bad size.
Image resize(const Image& image, int width, int height);

}  // namespace loom
