#pragma once
// Image files as model inputs, the way loom predict and loom search (and
// loom index --images) read them: each file converted as Fashion-MNIST was
// (loom::fashion_mnist::preprocess), a file that cannot be read or converted
// kept with its error instead of stopping the others.

#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "loom/image/image.hpp"
#include "loom/sequential.hpp"

namespace loom::tool {

struct ImageInputs {
  struct Item {
    std::string file;
    std::string error;  // empty when the image was read and converted
    Index row = -1;     // its row in seen and in batch()
  };
  std::vector<Item> items;  // in the order given
  std::vector<Image> seen;  // what the model sees, one per readable file

  /// (readable files, H, W, 1) in [0, 1]; empty when none was readable.
  Tensor batch() const;
};

/// UsageError unless the model takes square grey images, (None, N, N, 1), as converted image files are.
void check_takes_images(const Sequential& model, const std::string& model_name, const std::string& command);

/// Reads and converts every file for model; with save_input, also writes each
/// converted image as save_input/<file name>.input.png.
ImageInputs read_image_inputs(std::span<const std::string> files, const Sequential& model,
                              const std::optional<std::filesystem::path>& save_input = std::nullopt);

}  // namespace loom::tool
