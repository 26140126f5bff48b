#pragma once
// The arithmetic behind loom::resize, on floats (internal to the library).

#include <span>

namespace loom::detail {

/// src holds (h, w, c) values, dst receives (out_h, out_w, c), resampled as
/// loom/image/resize.hpp describes. Shared by resize and the Fashion-MNIST
/// preprocessing, which keeps its intermediate values unrounded.
void resize_plane(std::span<const float> src, int w, int h, int c, std::span<float> dst, int out_w, int out_h);

}  // namespace loom::detail
