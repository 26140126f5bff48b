// A labelled data set from a folder of image files (loom/data/image_folder.hpp).

#include "loom/data/image_folder.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <numeric>
#include <system_error>

#include <omp.h>

#include "loom/image/fashion_mnist_preprocess.hpp"
#include "loom/image/grey.hpp"
#include "loom/image/resize.hpp"
#include "loom/random.hpp"
#include "loom/training/progress.hpp"

namespace loom {
namespace {

namespace fs = std::filesystem;

bool hidden(const fs::path& p) { return p.filename().string().starts_with("."); }

// The class folders under root, sorted by name; DataError when there are none.
std::vector<fs::path> class_folders(const fs::path& root) {
  std::error_code ec;
  if (!fs::exists(root, ec)) throw DataError(root.string() + ": no such folder");
  if (!fs::is_directory(root, ec))
    throw DataError(root.string() + ": not a folder; expected one sub-folder per class holding its images");
  std::vector<fs::path> folders;
  Index files = 0;
  for (const fs::directory_entry& e : fs::directory_iterator(root)) {
    if (hidden(e.path())) continue;
    if (e.is_directory()) folders.push_back(e.path());
    else ++files;
  }
  if (folders.empty() && files == 0)
    throw DataError(root.string() + ": the folder is empty; expected one sub-folder per class holding its images");
  if (folders.empty())
    throw DataError(root.string() + ": no class sub-folders (" + std::to_string(files) +
                    " files directly in it); expected one sub-folder per class, " + (root / "CLASS/IMAGE").string());
  if (folders.size() > 256)
    throw DataError(root.string() + ": " + std::to_string(folders.size()) + " class folders; at most 256 are supported");
  std::sort(folders.begin(), folders.end(),
            [](const fs::path& a, const fs::path& b) { return a.filename().string() < b.filename().string(); });
  return folders;
}

// Every non-hidden regular file below folder, sorted by path.
std::vector<fs::path> files_in(const fs::path& folder) {
  std::vector<fs::path> files;
  for (auto it = fs::recursive_directory_iterator(folder); it != fs::recursive_directory_iterator(); ++it) {
    if (hidden(it->path())) {
      if (it->is_directory()) it.disable_recursion_pending();
      continue;
    }
    if (it->is_regular_file()) files.push_back(it->path());
  }
  std::sort(files.begin(), files.end());
  return files;
}

void check_options(const ImageFolderOptions& o) {
  const Shape& s = o.shape;
  if (s.rank() != 3) throw UsageError("load_image_folder: the sample shape must be (H, W, C), got " + s.to_string());
  if (o.conversion == ImageConversion::FashionMnist && (s.height() != s.width() || s.channels() != 1))
    throw UsageError("load_image_folder: Fashion-MNIST conversion makes square grey images (None, N, N, 1), not " +
                     s.to_string() + "; use ImageConversion::Resize for other shapes");
  if (s.channels() != 1 && s.channels() != 3)
    throw UsageError("load_image_folder: images convert to 1 (grey) or 3 (RGB) channels, not " +
                     std::to_string(s.channels()));
  // Refused here, not as every file fails the conversion (and is skipped).
  if (o.conversion == ImageConversion::FashionMnist && s.height() > fashion_mnist::max_size)
    throw UsageError("load_image_folder: shape " + s.to_string() + " is too large: Fashion-MNIST conversion makes " +
                     "images of at most " + std::to_string(fashion_mnist::max_size) + " x " +
                     std::to_string(fashion_mnist::max_size));
  if (o.conversion == ImageConversion::Resize &&
      (s.height() > max_image_side || s.width() > max_image_side || s.height() * s.width() > max_image_pixels))
    throw UsageError("load_image_folder: shape " + s.to_string() + " is too large: Resize makes images of at most " +
                     std::to_string(max_image_side) + " pixels a side and " + std::to_string(max_image_pixels) +
                     " pixels in all");
  if (!(o.validation_split >= 0.0 && o.validation_split < 1.0))
    throw UsageError("load_image_folder: validation_split must be in [0, 1), got " +
                     detail::option_value_text(o.validation_split));
}

// One file's outcome: its bytes as a sample, or why it has none.
struct Decoded {
  std::vector<std::uint8_t> bytes;
  std::string error;
};

}  // namespace

Image convert_for_input(const Image& image, const ImageFolderOptions& o) {
  check_options(o);  // a shape the conversion cannot make, named as load_image_folder names it
  const int h = static_cast<int>(o.shape.height()), w = static_cast<int>(o.shape.width());
  if (o.conversion == ImageConversion::FashionMnist) return fashion_mnist::preprocess(image, {.size = h}).image;
  return resize(o.shape.channels() == 1 ? to_grey(image) : to_rgb(image), w, h);
}

ImageFolder load_image_folder(const fs::path& root, const ImageFolderOptions& o) {
  check_options(o);
  const std::vector<fs::path> folders = class_folders(root);
  std::vector<fs::path> files;
  std::vector<std::uint8_t> file_labels;
  std::vector<std::string> names;
  for (std::size_t k = 0; k < folders.size(); ++k) {
    const std::vector<fs::path> mine = files_in(folders[k]);
    if (mine.empty()) throw DataError(folders[k].string() + ": class folder \"" + folders[k].filename().string() +
                                      "\" holds no image files");
    names.push_back(folders[k].filename().string());
    files.insert(files.end(), mine.begin(), mine.end());
    file_labels.insert(file_labels.end(), mine.size(), static_cast<std::uint8_t>(k));
  }

  // Decoded on loom's threads, each file into its own slot: the result does not depend on the thread count.
  const auto n = static_cast<Index>(files.size());
  std::vector<Decoded> decoded(files.size());
  std::optional<Progress> progress;
  if (o.progress) {
    progress.emplace(*o.progress, 1);
    progress->begin_task("Reading " + std::to_string(n) + " images in " + std::to_string(names.size()) +
                             " classes from " + root.string(),
                         n);
  }
  std::atomic<Index> done{0};
#pragma omp parallel for schedule(dynamic, 8)
  for (Index i = 0; i < n; ++i) {
    Decoded& d = decoded[static_cast<std::size_t>(i)];
    try {
      d.bytes = convert_for_input(read_image(files[static_cast<std::size_t>(i)]), o).pixels;
    } catch (const Error& e) {
      d.error = e.what();
    }
    const Index now = ++done;
    if (progress && omp_get_thread_num() == 0) progress->update(now);  // Progress is one thread's
  }
  if (progress) progress->end_task();

  std::vector<SkippedFile> skipped;
  std::vector<Index> readable;
  std::vector<Index> per_class(names.size(), 0);
  for (Index i = 0; i < n; ++i) {
    const Decoded& d = decoded[static_cast<std::size_t>(i)];
    const fs::path& file = files[static_cast<std::size_t>(i)];
    if (!d.error.empty()) {
      if (!o.skip_unreadable) throw DataError(file.string() + ": cannot be used as an image: " + d.error);
      skipped.push_back({file, d.error});
      continue;
    }
    readable.push_back(i);
    ++per_class[file_labels[static_cast<std::size_t>(i)]];
  }
  for (std::size_t k = 0; k < names.size(); ++k)
    if (per_class[k] == 0)
      throw DataError(folders[k].string() + ": class folder \"" + names[k] +
                      "\" holds no readable image (every file in it was skipped)");

  Random(o.seed).shuffle(std::span<Index>(readable));
  const auto total = static_cast<Index>(readable.size());
  const auto held = static_cast<Index>(std::llround(static_cast<double>(total) * o.validation_split));
  if (o.validation_split > 0.0 && (held == 0 || held == total))
    throw DataError(root.string() + ": validation_split " + detail::option_value_text(o.validation_split) + " of " +
                    std::to_string(total) + " images leaves " + (held == 0 ? "no validation" : "no training") +
                    " images");
  const auto classes = static_cast<Index>(names.size());
  auto dataset = [&](Index begin, Index end) {
    std::vector<std::uint8_t> pixels, labels;
    pixels.reserve(static_cast<std::size_t>((end - begin) * o.shape.size()));
    for (Index j = begin; j < end; ++j) {
      const auto i = static_cast<std::size_t>(readable[static_cast<std::size_t>(j)]);
      pixels.insert(pixels.end(), decoded[i].bytes.begin(), decoded[i].bytes.end());
      labels.push_back(file_labels[i]);
    }
    return Dataset(std::move(pixels), std::move(labels), o.shape, classes);
  };
  std::optional<Dataset> validation;
  if (held > 0) validation = dataset(total - held, total);
  return {dataset(0, total - held), std::move(validation), std::move(names), std::move(skipped)};
}

}  // namespace loom
