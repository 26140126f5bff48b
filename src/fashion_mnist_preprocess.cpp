// The steps of include/loom/image/fashion_mnist_preprocess.hpp, one function each.

#include "loom/image/fashion_mnist_preprocess.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <vector>

#include "image_check.hpp"
#include "resize_plane.hpp"
#include "loom/error.hpp"
#include "loom/image/grey.hpp"
#include "loom/image/resize.hpp"

namespace loom::fashion_mnist {
namespace {

// However noisy the border, a pixel this far from the background counts as garment.
constexpr float max_threshold = 64.0f;

struct Background {
  std::uint8_t level = 0;  // median grey of the border ring
  float spread = 0.0f;     // 1.4826 x median absolute deviation: the noise's sigma for Gaussian noise
};

// The value at rank n / 2 of a histogram holding n values.
int histogram_median(const std::array<std::size_t, 256>& hist, std::size_t n) {
  std::size_t seen = 0;
  for (int v = 0; v < 256; ++v) {
    seen += hist[static_cast<std::size_t>(v)];
    if (seen > n / 2) return v;
  }
  return 255;
}

// Step 2: the border ring, the outer 2% of the shorter side (at least 1 pixel).
Background estimate_background(const Image& grey) {
  const int w = grey.width, h = grey.height;
  const int ring = std::max(1, std::min(w, h) / 50);
  std::array<std::size_t, 256> hist{};
  std::size_t n = 0;
  for (int y = 0; y < h; ++y) {
    const bool edge_row = y < ring || y >= h - ring;
    for (int x = 0; x < w; ++x) {
      if (!edge_row && x >= ring && x < w - ring) {
        x = w - ring - 1;  // skip the interior of this row
        continue;
      }
      ++hist[grey.at(x, y)];
      ++n;
    }
  }
  Background bg;
  bg.level = static_cast<std::uint8_t>(histogram_median(hist, n));
  std::array<std::size_t, 256> dev{};
  for (int v = 0; v < 256; ++v) dev[static_cast<std::size_t>(std::abs(v - bg.level))] += hist[static_cast<std::size_t>(v)];
  bg.spread = 1.4826f * static_cast<float>(histogram_median(dev, n));
  return bg;
}

// Step 3: rows [y0, y1) and columns [x0, x1) with at least min_fill of their
// pixels further than threshold from the background. Empty when none are.
Box garment_box(const Image& grey, std::uint8_t background, float threshold, float min_fill) {
  const int w = grey.width, h = grey.height;
  std::vector<int> rows(static_cast<std::size_t>(h), 0), cols(static_cast<std::size_t>(w), 0);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      if (std::abs(static_cast<float>(grey.at(x, y)) - background) > threshold) {
        ++rows[static_cast<std::size_t>(y)];
        ++cols[static_cast<std::size_t>(x)];
      }
  // A row spans w pixels, so its minimum count scales with w; a column's with h.
  const auto extent = [](const std::vector<int>& counts, int need) {
    const auto ok = [need](int k) { return k >= need; };
    const auto first = std::find_if(counts.begin(), counts.end(), ok);
    if (first == counts.end()) return std::pair<int, int>{0, 0};
    const auto last = std::find_if(counts.rbegin(), counts.rend(), ok);
    return std::pair<int, int>{static_cast<int>(first - counts.begin()), static_cast<int>(counts.rend() - last)};
  };
  const auto need = [min_fill](int length) { return std::max(1, static_cast<int>(std::ceil(min_fill * static_cast<float>(length)))); };
  const auto [y0, y1] = extent(rows, need(w));
  const auto [x0, x1] = extent(cols, need(h));
  if (y1 <= y0 || x1 <= x0) return {};
  return {x0, y0, x1 - x0, y1 - y0};
}

// Step 3, continued: whether the garment pixels in box are mostly darker than
// the background (a garment on white, say), by their summed difference.
bool garment_is_darker(const Image& grey, const Box& box, std::uint8_t background, float threshold) {
  double sum = 0.0;
  for (int y = box.y; y < box.y + box.height; ++y)
    for (int x = box.x; x < box.x + box.width; ++x) {
      const float d = static_cast<float>(grey.at(x, y)) - background;
      if (std::abs(d) > threshold) sum += d;
    }
  return sum < 0.0;
}

// Step 8: v + amount * (v - blur(v)) on an n x n plane, blur a 3 x 3 Gaussian
// of standard deviation 1 (the paper's radius and sigma), edges repeated.
// The caller clamps the overshoot to [0, 255], as an 8-bit image would.
void unsharp_mask(std::vector<float>& plane, int n, float amount) {
  const float e = std::exp(-0.5f), wc = 1.0f / (1.0f + 2.0f * e), ws = e * wc;  // 1-D weights ws, wc, ws
  const auto N = static_cast<std::size_t>(n);
  const auto at = [&](const std::vector<float>& p, int x, int y) {
    return p[static_cast<std::size_t>(std::clamp(y, 0, n - 1)) * N + static_cast<std::size_t>(std::clamp(x, 0, n - 1))];
  };
  std::vector<float> rows(plane.size()), blur(plane.size());
  for (int y = 0; y < n; ++y)
    for (int x = 0; x < n; ++x)
      rows[static_cast<std::size_t>(y) * N + static_cast<std::size_t>(x)] =
          ws * at(plane, x - 1, y) + wc * at(plane, x, y) + ws * at(plane, x + 1, y);
  for (int y = 0; y < n; ++y)
    for (int x = 0; x < n; ++x)
      blur[static_cast<std::size_t>(y) * N + static_cast<std::size_t>(x)] =
          ws * at(rows, x, y - 1) + wc * at(rows, x, y) + ws * at(rows, x, y + 1);
  for (std::size_t i = 0; i < plane.size(); ++i) plane[i] += amount * (plane[i] - blur[i]);
}

void check_options(const PreprocessOptions& o) {
  if (o.size < 1 || o.size > max_size)
    throw UsageError("fashion_mnist::preprocess: size must be in [1, " + std::to_string(max_size) + "], got " +
                     std::to_string(o.size));
  if (!(o.min_contrast > 0.0f && o.min_contrast < 1.0f))
    throw UsageError("fashion_mnist::preprocess: min_contrast must be in (0, 1), got " +
                     detail::option_value_text(o.min_contrast));
  // An infinite multiple of a noiseless background is NaN, and the image silently black.
  if (!(o.noise_sigmas >= 0.0f && std::isfinite(o.noise_sigmas)))
    throw UsageError("fashion_mnist::preprocess: noise_sigmas must be finite and >= 0, got " +
                     detail::option_value_text(o.noise_sigmas));
  if (!(o.sharpen >= 0.0f && o.sharpen <= 10.0f))
    throw UsageError("fashion_mnist::preprocess: sharpen must be in [0, 10], got " +
                     detail::option_value_text(o.sharpen));
  if (!(o.min_fill >= 0.0f && o.min_fill <= 1.0f))
    throw UsageError("fashion_mnist::preprocess: min_fill must be in [0, 1], got " +
                     detail::option_value_text(o.min_fill));
}

}  // namespace

Preprocessed preprocess(const Image& image, const PreprocessOptions& options) {
  detail::check_image(image, "fashion_mnist::preprocess");
  check_options(options);
  const Image grey = to_grey(image);  // step 1

  // Step 2: the background.
  const Background bg = estimate_background(grey);
  Preprocessed out;
  out.background = bg.level;
  const float noise = options.noise_sigmas * bg.spread;
  const float threshold = std::min(max_threshold, std::max(options.min_contrast * 255.0f, noise));

  // Step 3: the crop.
  out.crop = garment_box(grey, bg.level, threshold, options.min_fill);
  if (out.crop.width == 0)
    throw DataError("fashion_mnist::preprocess: nothing in the " + std::to_string(image.width) + " x " +
                    std::to_string(image.height) + " image differs from its background (grey " +
                    std::to_string(bg.level) + ") by more than " + std::to_string(std::lround(threshold)) +
                    " levels; it looks uniform, with no garment to classify");
  const Box& b = out.crop;
  out.negated = garment_is_darker(grey, b, bg.level, threshold);

  // Step 4: the garment light, the background (and its noise) at 0.
  const auto orient = [&](float v) { return out.negated ? 255.0f - v : v; };
  const float black = orient(bg.level) + std::min(noise, threshold);
  std::vector<float> crop(static_cast<std::size_t>(b.width) * static_cast<std::size_t>(b.height));
  for (int y = 0; y < b.height; ++y)
    for (int x = 0; x < b.width; ++x)
      crop[static_cast<std::size_t>(y) * static_cast<std::size_t>(b.width) + static_cast<std::size_t>(x)] =
          std::max(0.0f, orient(grey.at(b.x + x, b.y + y)) - black);

  // Step 5: the longest side to size, the other in proportion (at least 1 pixel).
  const int n = options.size;
  const int long_side = std::max(b.width, b.height);
  const auto scaled = [&](int side) {
    return std::clamp(static_cast<int>(std::lround(static_cast<double>(side) * n / long_side)), 1, n);
  };
  const int w = scaled(b.width), h = scaled(b.height);
  std::vector<float> small(static_cast<std::size_t>(w) * static_cast<std::size_t>(h));
  detail::resize_plane(crop, b.width, b.height, 1, small, w, h);

  // Step 6: centred on black; an odd margin leaves the extra column on the
  // left and row on top, as in Fashion-MNIST (959 of 963 odd horizontal
  // margins in the first 3,000 test images, 535 of 566 vertical).
  const auto N = static_cast<std::size_t>(n);
  std::vector<float> canvas(N * N, 0.0f);
  const int x0 = (n - w + 1) / 2, y0 = (n - h + 1) / 2;
  for (int y = 0; y < h; ++y)
    std::copy_n(small.begin() + static_cast<std::ptrdiff_t>(y) * w, w,
                canvas.begin() + static_cast<std::ptrdiff_t>(y0 + y) * n + x0);

  // Step 7: the brightest pixel to 255, as in Fashion-MNIST, whose every image
  // has its maximum at 240 or above; a pale or tinted garment then looks like any other.
  const float top = *std::max_element(canvas.begin(), canvas.end());
  const float gain = top > 0.0f ? 255.0f / top : 0.0f;
  for (float& v : canvas) v *= gain;

  // Step 8: sharpen what was shrunk, as the paper did after subsampling.
  if (long_side > n && options.sharpen > 0.0f) unsharp_mask(canvas, n, options.sharpen);

  out.image = Image(n, n, 1, 0);
  std::transform(canvas.begin(), canvas.end(), out.image.pixels.begin(),
                 [](float v) { return static_cast<std::uint8_t>(std::lround(std::clamp(v, 0.0f, 255.0f))); });
  return out;
}

}  // namespace loom::fashion_mnist
