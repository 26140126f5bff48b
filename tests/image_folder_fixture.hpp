#pragma once
// Tiny folders of generated PNG files, one sub-folder per class, for the
// image-folder tests of the library and of `loom train --images`.

#include <filesystem>
#include <string>
#include <vector>

#include "loom/image/image.hpp"
#include "loom/random.hpp"

namespace loom::testing {

// A dark shape on a light background, as a product photo: class 0 a tall bar,
// class 1 a wide bar, class k > 1 a square of side 8 + 4k; placed at random.
inline Image shape_photo(int label, Random& rng, int channels = 3) {
  Image img(48, 40, channels, 235);
  const int w = label == 0 ? 8 : label == 1 ? 30 : 8 + 4 * label;
  const int h = label == 0 ? 30 : label == 1 ? 8 : 8 + 4 * label;
  const int x0 = static_cast<int>(rng.below(static_cast<std::uint64_t>(48 - w)));
  const int y0 = static_cast<int>(rng.below(static_cast<std::uint64_t>(40 - h)));
  for (int y = y0; y < y0 + h; ++y)
    for (int x = x0; x < x0 + w; ++x)
      for (int c = 0; c < channels; ++c) img.at(x, y, c) = static_cast<std::uint8_t>(30 + 20 * c);
  return img;
}

// root/<names[k]>/<i>.png, per_class files each; returns the files written.
inline std::vector<std::filesystem::path> write_image_folder(const std::filesystem::path& root,
                                                             const std::vector<std::string>& names, int per_class,
                                                             std::uint64_t seed = 1) {
  Random rng(seed);
  std::vector<std::filesystem::path> files;
  for (std::size_t k = 0; k < names.size(); ++k) {
    std::filesystem::create_directories(root / names[k]);
    for (int i = 0; i < per_class; ++i) {
      files.push_back(root / names[k] / (std::to_string(i) + ".png"));
      write_png(files.back(), shape_photo(static_cast<int>(k), rng));
    }
  }
  return files;
}

}  // namespace loom::testing
