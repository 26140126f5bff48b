// Image files as model inputs (image_inputs.hpp).

#include "image_inputs.hpp"

#include <map>
#include <string>

#include "loom/image/fashion_mnist_preprocess.hpp"
#include "loom/image/image_tensor.hpp"

namespace loom::tool {

namespace fs = std::filesystem;

Tensor ImageInputs::batch() const { return seen.empty() ? Tensor() : to_tensor(seen); }

void check_takes_images(const Sequential& model, const std::string& model_name, const std::string& command) {
  const Shape in = model.input_shape();
  if (in.rank() != 3 || in.height() != in.width() || in.channels() != 1)
    throw UsageError(command + ": " + model_name + " takes input " + in.to_string() +
                     "; image files are converted to square grey images, (None, N, N, 1)");
}

ImageInputs read_image_inputs(std::span<const std::string> files, const Sequential& model,
                              const std::optional<fs::path>& save_input) {
  const int size = static_cast<int>(model.input_shape().height());
  if (save_input) {
    // Each file's picture is named after the file alone: two files of one name would overwrite one another.
    std::map<std::string, const std::string*> named;
    for (const std::string& file : files)
      if (const auto [at, fresh] = named.emplace(fs::path(file).filename().string(), &file); !fresh)
        throw UsageError("--save-input: " + *at->second + " and " + file + " would both be saved as " + at->first +
                         ".input.png; save files of the same name in separate runs");
    fs::create_directories(*save_input);
  }
  ImageInputs r;
  for (const std::string& file : files) {
    ImageInputs::Item& item = r.items.emplace_back(ImageInputs::Item{file});
    try {
      Image seen = fashion_mnist::preprocess(read_image(file), {.size = size}).image;
      if (save_input) write_png(*save_input / (fs::path(file).filename().string() + ".input.png"), seen);
      item.row = static_cast<Index>(r.seen.size());
      r.seen.push_back(std::move(seen));
    } catch (const Error& e) {
      item.error = e.what();
    }
  }
  return r;
}

}  // namespace loom::tool
