// The steps of include/loom/image/fashion_mnist_preprocess.hpp, one function each.

#include "loom/image/fashion_mnist_preprocess.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <vector>

#include "image_check.hpp"
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
  const auto span = [](const std::vector<int>& counts, int need) {
    const auto ok = [need](int k) { return k >= need; };
    const auto first = std::find_if(counts.begin(), counts.end(), ok);
    if (first == counts.end()) return std::pair<int, int>{0, 0};
    const auto last = std::find_if(counts.rbegin(), counts.rend(), ok);
    return std::pair<int, int>{static_cast<int>(first - counts.begin()), static_cast<int>(counts.rend() - last)};
  };
  const auto need = [min_fill](int length) { return std::max(1, static_cast<int>(std::ceil(min_fill * length))); };
  const auto [y0, y1] = span(rows, need(w));
  const auto [x0, x1] = span(cols, need(h));
  if (y1 <= y0 || x1 <= x0) return {};
  return {x0, y0, x1 - x0, y1 - y0};
}

void check_options(const PreprocessOptions& o) {
  if (o.size < 1 || o.size > 4096)
    throw UsageError("fashion_mnist::preprocess: size must be in [1, 4096], got " + std::to_string(o.size));
  if (!(o.min_contrast > 0.0f && o.min_contrast < 1.0f))
    throw UsageError("fashion_mnist::preprocess: min_contrast must be in (0, 1), got " +
                     std::to_string(o.min_contrast));
  if (!(o.noise_sigmas >= 0.0f))
    throw UsageError("fashion_mnist::preprocess: noise_sigmas must be >= 0, got " + std::to_string(o.noise_sigmas));
  if (!(o.min_fill >= 0.0f && o.min_fill <= 1.0f))
    throw UsageError("fashion_mnist::preprocess: min_fill must be in [0, 1], got " + std::to_string(o.min_fill));
}

}  // namespace

Preprocessed preprocess(const Image& image, const PreprocessOptions& options) {
  detail::check_image(image, "fashion_mnist::preprocess");
  check_options(options);
  const Image grey = to_grey(image);  // step 1

  // Step 2: background and orientation.
  const Background bg = estimate_background(grey);
  Preprocessed out;
  out.background = bg.level;
  out.light_background = bg.level >= 128;
  const float noise = options.noise_sigmas * bg.spread;
  const float threshold = std::min(max_threshold, std::max(options.min_contrast * 255.0f, noise));

  // Step 3: the crop.
  out.crop = garment_box(grey, bg.level, threshold, options.min_fill);
  if (out.crop.width == 0)
    throw DataError("fashion_mnist::preprocess: nothing in the " + std::to_string(image.width) + " x " +
                    std::to_string(image.height) + " image differs from its background (grey " +
                    std::to_string(bg.level) + ") by more than " + std::to_string(std::lround(threshold)) +
                    " levels; it looks uniform, with no garment to classify");

  // Step 4: levels. Oriented so the garment is light; the background (and its
  // noise) maps to 0 and the far end of the range to 255.
  const auto orient = [&](float v) { return out.light_background ? 255.0f - v : v; };
  const float black = std::min(orient(bg.level) + std::min(noise, threshold), 254.0f);
  const float gain = 255.0f / (255.0f - black);
  const Box& b = out.crop;
  std::vector<float> crop(static_cast<std::size_t>(b.width) * static_cast<std::size_t>(b.height));
  for (int y = 0; y < b.height; ++y)
    for (int x = 0; x < b.width; ++x)
      crop[static_cast<std::size_t>(y) * static_cast<std::size_t>(b.width) + static_cast<std::size_t>(x)] =
          std::max(0.0f, (orient(grey.at(b.x + x, b.y + y)) - black) * gain);

  // Step 5: the longest side to size, the other in proportion (at least 1 pixel).
  const int n = options.size;
  const int long_side = std::max(b.width, b.height);
  const auto scaled = [&](int side) {
    return std::clamp(static_cast<int>(std::lround(static_cast<double>(side) * n / long_side)), 1, n);
  };
  const int w = scaled(b.width), h = scaled(b.height);
  std::vector<float> small(static_cast<std::size_t>(w) * static_cast<std::size_t>(h));
  detail::resize_plane(crop, b.width, b.height, 1, small, w, h);

  // Step 6: centred on black.
  out.image = Image(n, n, 1, 0);
  const int x0 = (n - w) / 2, y0 = (n - h) / 2;
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      out.image.at(x0 + x, y0 + y) = static_cast<std::uint8_t>(
          std::lround(std::clamp(small[static_cast<std::size_t>(y) * static_cast<std::size_t>(w) + static_cast<std::size_t>(x)],
                                 0.0f, 255.0f)));
  return out;
}

}  // namespace loom::fashion_mnist
