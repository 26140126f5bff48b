#pragma once
// Turning any picture of a garment into a Fashion-MNIST-like 28x28 image.
//
// Fashion-MNIST (Xiao, Rasul, Vollgraf 2017, section 2) made its images from
// product photos on white: trim the edges that match the corner colour, shrink
// the longest edge to 28, sharpen, pad the shortest edge to 28 with the image
// centred, negate, convert to 8-bit grey. A model trained on it expects a light
// garment filling the box on a black background. preprocess does the same to
// a photo, on a light or a dark background:
//
//   1. grey: BT.601 luma; alpha composited over white (to_grey).
//   2. background: the median grey of the border ring (the outer 2% of the
//      shorter side, at least 1 pixel) and its noise (1.4826 x the median
//      absolute deviation, which a garment touching the edge barely moves).
//   3. crop: the bounding box of the rows and columns in which enough pixels
//      (min_fill) differ from the background by more than the threshold,
//      min_contrast, raised on a noisy background to noise_sigmas x the noise
//      (at most 64 levels). When the garment is darker than the background
//      (mostly, by its summed difference), the intensities are negated.
//   4. the background level plus noise_sigmas x its noise (at most the step 3
//      threshold) becomes 0: a grey backdrop turns black, as Zalando's white did.
//   5. resize: the longest side of the crop to size, aspect kept; area
//      averaging when shrinking (the paper subsampled, which aliases),
//      linear interpolation when enlarging a tiny crop (resize.hpp).
//   6. centre on a black size x size canvas, an odd margin's extra pixel on
//      the left and top, as Fashion-MNIST has it.
//   7. the brightest pixel to 255: every Fashion-MNIST image has its maximum
//      at 240 or above (92% at 255), so a pale or tinted garment should too.
//   8. sharpen, when the crop was shrunk: an unsharp mask with the paper's
//      Gaussian (radius 1, sigma 1), clipped to [0, 255]. Area averaging
//      leaves edges softer than the paper's subsampling did; an image already
//      at size (a Fashion-MNIST image itself) is left as it is.
// docs/image-preprocessing.md has the measurements behind these choices.
//
// Thread safety: free functions without shared state; safe from many threads.

#include <cstdint>

#include "loom/image/image.hpp"

namespace loom::fashion_mnist {

/// Largest side of preprocess's output.
inline constexpr int max_size = 4096;

struct PreprocessOptions {
  int size = 28;  // side of the square output, in [1, max_size]
  /// Smallest difference from the background grey, as a fraction of 255, that
  /// marks a pixel as garment for the crop. The paper trimmed within 5% of
  /// the maximum; 8% also ignores JPEG ringing around a garment.
  float min_contrast = 0.08f;
  /// On a noisy background the threshold is at least this many noise spreads,
  /// and so many spreads above the background level are cleared to 0 (step 4).
  /// Finite and not negative.
  float noise_sigmas = 3.0f;
  /// Strength of the unsharp mask after shrinking (step 8); 0 turns it off.
  float sharpen = 1.0f;
  /// A row or column belongs to the garment when at least this fraction of its
  /// pixels (and at least one) differ from the background: lone specks do not stretch the crop.
  float min_fill = 0.005f;
};

/// A rectangle in the input image, in pixels.
struct Box {
  int x = 0, y = 0, width = 0, height = 0;
  bool operator==(const Box&) const = default;
};

struct Preprocessed {
  Image image;                   // size x size, 1 channel, garment light on black
  Box crop;                      // where the garment was found in the input
  std::uint8_t background = 0;   // the background's grey level in the input
  bool negated = false;          // true when the garment was darker than the background
};

/// The steps above. Throws UsageError on an empty image or bad options, and
/// DataError when nothing differs from the background (a uniform image has no
/// garment to classify; a blank 28x28 would yield a confident, meaningless class).
Preprocessed preprocess(const Image& image, const PreprocessOptions& options = {});

}  // namespace loom::fashion_mnist
