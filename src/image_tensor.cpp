#include "loom/image/image_tensor.hpp"

#include "image_check.hpp"
#include "loom/data/dataset.hpp"  // scale_pixels

namespace loom {

Tensor to_tensor(const Image& image) { return to_tensor(std::span<const Image>(&image, 1)); }

Tensor to_tensor(std::span<const Image> images) {
  if (images.empty()) throw UsageError("to_tensor: no images");
  const Image& first = images.front();
  detail::check_image(first, "to_tensor: image 0");
  Tensor x(static_cast<Index>(images.size()), first.height, first.width, first.channels);
  const std::size_t per = first.pixels.size();
  for (std::size_t i = 0; i < images.size(); ++i) {
    const Image& im = images[i];
    detail::check_image(im, "to_tensor: image " + std::to_string(i));
    if (im.width != first.width || im.height != first.height || im.channels != first.channels)
      throw ShapeError("to_tensor: image " + std::to_string(i) + " is " + std::to_string(im.width) + " x " +
                       std::to_string(im.height) + " x " + std::to_string(im.channels) + " but image 0 is " +
                       std::to_string(first.width) + " x " + std::to_string(first.height) + " x " +
                       std::to_string(first.channels) + "; a batch needs one size");
    scale_pixels(im.pixels, x.data() + i * per);
  }
  return x;
}

}  // namespace loom
