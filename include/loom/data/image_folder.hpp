#pragma once
// A labelled data set from a folder of image files, one sub-folder per class
// (the layout of Keras's image_dataset_from_directory and torchvision's
// ImageFolder):
//
//   root/
//     boot/      001.jpg  002.png ...
//     sandal/    ...
//
// Class names are the sub-folders' names, sorted bytewise; a class's label is
// its place in that order. Every file below a class folder (sub-folders
// included, hidden files not) that stb_image reads is a sample, converted to
// the model's input:
//   FashionMnist  as loom predict converts a photo for a grey N x N model
//                 (fashion_mnist::preprocess: grey, background found, garment
//                 cropped, centred on black);
//   Resize        the whole picture resized to H x W, in grey (C = 1) or RGB
//                 (C = 3), transparency over white: for colour models.
// Pixels are kept as bytes in a Dataset, as Fashion-MNIST's are. Samples are
// in a seeded random order, so a split from the end (validation_split here,
// or fit's) holds every class in about its share.
//
// A file that cannot be read or converted is skipped and listed in `skipped`,
// or, with skip_unreadable = false, a DataError naming it. A missing or empty
// root, a root without class folders, or a class folder with no (readable)
// image is a DataError naming the path.
//
// Thread safety: load_image_folder has no shared state; files are decoded on
// loom's threads, and the result does not depend on their count.

#include <cstdint>
#include <filesystem>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "loom/data/dataset.hpp"
#include "loom/image/image.hpp"

namespace loom {

enum class ImageConversion { FashionMnist, Resize };

struct ImageFolderOptions {
  Shape shape = Shape::image(28, 28, 1);  // the model's input (H, W, C)
  // FashionMnist needs H = W <= fashion_mnist::max_size (4096) and C = 1; Resize takes C 1 or 3,
  // sides up to max_image_side and H x W up to max_image_pixels (image.hpp).
  ImageConversion conversion = ImageConversion::FashionMnist;
  double validation_split = 0.0;  // fraction in [0, 1) of the samples held out as `validation`
  std::uint64_t seed = 0;         // orders the samples (and so chooses the validation ones)
  bool skip_unreadable = true;    // false: an unreadable file is a DataError naming it
  std::ostream* progress = nullptr;  // where a progress bar goes while decoding; none when null
};

struct SkippedFile {
  std::filesystem::path path;
  std::string reason;
};

struct ImageFolder {
  Dataset train;                        // every sample but the validation ones
  std::optional<Dataset> validation;    // with validation_split > 0
  std::vector<std::string> class_names; // indexed by label
  std::vector<SkippedFile> skipped;     // files that could not be read or converted, in path order
};

/// Loads root as described above. Throws DataError on a bad folder, file
/// (without skip_unreadable) or split, UsageError on bad options (a shape the
/// conversion cannot make among them), before reading any file.
ImageFolder load_image_folder(const std::filesystem::path& root, const ImageFolderOptions& options = {});

/// One decoded image as a sample of options.shape, converted as options.conversion says
/// (the step load_image_folder applies to every file). Throws UsageError for options
/// load_image_folder refuses (a shape the conversion cannot make), DataError when the
/// image cannot be converted.
Image convert_for_input(const Image& image, const ImageFolderOptions& options);

}  // namespace loom
