#pragma once
// Fashion-MNIST (Zalando, 2017): 60,000 training and 10,000 test images of
// 28x28 grey pixels in 10 classes, stored as four IDX files. Finding them and
// loading them as Datasets. The same files make MNIST, so these work for it too.
//
// Where the files are looked for, in order:
//   1. the directory passed to find_data_dir, if any
//   2. $LOOM_DATA_DIR, or its fashion-mnist/ subdirectory
//   3. ./data/fashion-mnist      (where data/fetch.sh puts them)
//   4. /usr/share/datasets/fashion-mnist   (Debian: apt-get install dataset-fashion-mnist)
// A directory given in 1 or 2 that lacks the files is an error, not a reason to
// look elsewhere: silently loading another copy would hide the mistake.
//
// Each file is accepted under either spelling seen in the wild, raw or gzipped:
// train-images-idx3-ubyte, train-images.idx3-ubyte, and both with .gz.
//
// Thread safety: no shared state (the environment is only read); safe from many threads.

#include <array>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "loom/data/dataset.hpp"

namespace loom::fashion_mnist {

/// Class names, indexed by label.
inline constexpr std::array<std::string_view, 10> class_names = {
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"};
inline constexpr Index num_classes = 10;
/// Every image's shape, 28 x 28 pixels of one grey channel: the models'
/// input (image folders are converted to it, as loom predict converts a file).
inline Shape sample_shape() { return Shape{28, 28, 1}; }

/// The environment variable naming a data directory.
inline constexpr const char* env_var = "LOOM_DATA_DIR";
/// Searched, in order, after an explicit directory and $LOOM_DATA_DIR.
inline constexpr std::array<std::string_view, 2> default_dirs = {"data/fashion-mnist",
                                                                 "/usr/share/datasets/fashion-mnist"};

/// The four files, by their canonical names.
inline constexpr std::string_view train_images = "train-images-idx3-ubyte";
inline constexpr std::string_view train_labels = "train-labels-idx1-ubyte";
inline constexpr std::string_view test_images = "t10k-images-idx3-ubyte";
inline constexpr std::string_view test_labels = "t10k-labels-idx1-ubyte";

/// The names a file is accepted under, in order of preference (raw before .gz,
/// since it reads faster): "train-images-idx3-ubyte", "train-images.idx3-ubyte", then both + ".gz".
std::vector<std::string> spellings(std::string_view name);

/// The file called name (in any of its spellings) in dir, if there is one.
std::optional<std::filesystem::path> find_file(const std::filesystem::path& dir, std::string_view name);

/// The directory that holds all four files, as an absolute path; see the search
/// order above. Throws DataError listing every directory looked in and why each
/// was passed over, the file names looked for, and how to get the data.
std::filesystem::path find_data_dir(const std::optional<std::filesystem::path>& dir = std::nullopt);

/// The first of dirs that holds all four files, as an absolute path; throws
/// DataError like find_data_dir when none does. find_data_dir's last step.
std::filesystem::path first_data_dir(std::span<const std::filesystem::path> dirs);

/// The 60,000 training samples (or 10,000 test samples) from dir, shape (28, 28, 1), 10 classes.
Dataset load_train(const std::filesystem::path& dir);
Dataset load_test(const std::filesystem::path& dir);
/// The same, from find_data_dir().
inline Dataset load_train() { return load_train(find_data_dir()); }
inline Dataset load_test() { return load_test(find_data_dir()); }

}  // namespace loom::fashion_mnist
