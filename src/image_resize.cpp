// Separable resampling: a table of weights per output position along each
// axis, applied to rows and then to columns.

#include "loom/image/resize.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

#include "image_check.hpp"
#include "resize_plane.hpp"
#include "loom/error.hpp"

namespace loom {
namespace {

// Output position i along an axis reads inputs first .. first + weights.size() - 1.
struct Tap {
  int first = 0;
  std::vector<float> weights;  // sum to 1
};

// Shrinking: output i covers input interval [i * r, (i + 1) * r), r = n_in / n_out;
// each input pixel weighs as much as it overlaps. Growing (or equal): linear
// interpolation at the output centre mapped into the input, edges clamped.
std::vector<Tap> taps(int n_in, int n_out) {
  std::vector<Tap> out(static_cast<std::size_t>(n_out));
  const double r = static_cast<double>(n_in) / n_out;
  for (int i = 0; i < n_out; ++i) {
    Tap& t = out[static_cast<std::size_t>(i)];
    if (n_out < n_in) {
      const double lo = i * r, hi = (i + 1) * r;
      t.first = static_cast<int>(std::floor(lo));
      const int last = std::min(n_in - 1, static_cast<int>(std::ceil(hi)) - 1);
      for (int j = t.first; j <= last; ++j)
        t.weights.push_back(static_cast<float>((std::min<double>(hi, j + 1) - std::max<double>(lo, j)) / r));
    } else {
      const double x = std::clamp((i + 0.5) * r - 0.5, 0.0, static_cast<double>(n_in - 1));
      t.first = std::min(static_cast<int>(std::floor(x)), std::max(0, n_in - 2));
      const auto f = static_cast<float>(x - t.first);
      t.weights = n_in == 1 ? std::vector<float>{1.0f} : std::vector<float>{1.0f - f, f};
    }
  }
  return out;
}

}  // namespace

namespace detail {

void resize_plane(std::span<const float> src, int w, int h, int c, std::span<float> dst, int out_w, int out_h) {
  const auto C = static_cast<std::size_t>(c);
  const std::vector<Tap> tx = taps(w, out_w), ty = taps(h, out_h);
  // Rows first: (h, w, c) -> (h, out_w, c).
  std::vector<float> mid(static_cast<std::size_t>(h) * static_cast<std::size_t>(out_w) * C, 0.0f);
  for (int y = 0; y < h; ++y) {
    const float* row = src.data() + static_cast<std::size_t>(y) * static_cast<std::size_t>(w) * C;
    float* out = mid.data() + static_cast<std::size_t>(y) * static_cast<std::size_t>(out_w) * C;
    for (int x = 0; x < out_w; ++x) {
      const Tap& t = tx[static_cast<std::size_t>(x)];
      for (std::size_t k = 0; k < t.weights.size(); ++k)
        for (std::size_t ch = 0; ch < C; ++ch)
          out[static_cast<std::size_t>(x) * C + ch] += t.weights[k] * row[(t.first + k) * C + ch];
    }
  }
  // Then columns: (h, out_w, c) -> (out_h, out_w, c).
  const std::size_t stride = static_cast<std::size_t>(out_w) * C;
  std::fill(dst.begin(), dst.end(), 0.0f);
  for (int y = 0; y < out_h; ++y) {
    const Tap& t = ty[static_cast<std::size_t>(y)];
    float* out = dst.data() + static_cast<std::size_t>(y) * stride;
    for (std::size_t k = 0; k < t.weights.size(); ++k) {
      const float* in = mid.data() + (static_cast<std::size_t>(t.first) + k) * stride;
      for (std::size_t j = 0; j < stride; ++j) out[j] += t.weights[k] * in[j];
    }
  }
}

}  // namespace detail

Image resize(const Image& image, int width, int height) {
  detail::check_image(image, "resize");
  Image out(width, height, image.channels);  // checks the new size
  std::vector<float> src(image.pixels.begin(), image.pixels.end()), dst(out.pixels.size());
  detail::resize_plane(src, image.width, image.height, image.channels, dst, width, height);
  std::transform(dst.begin(), dst.end(), out.pixels.begin(),
                 [](float v) { return static_cast<std::uint8_t>(std::lround(std::clamp(v, 0.0f, 255.0f))); });
  return out;
}

}  // namespace loom
