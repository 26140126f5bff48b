// Image-folder data sets (loom/data/image_folder.hpp): classes from sorted
// sub-folder names, conversion as loom predict converts, the validation split,
// unreadable files skipped or refused, and a clear error for each bad folder.

#include <catch2/catch.hpp>

#include <fstream>
#include <sstream>
#include <string>

#include "image_folder_fixture.hpp"
#include "loom/data/image_folder.hpp"
#include "loom/image/fashion_mnist_preprocess.hpp"
#include "loom/threads.hpp"
#include "temp_dir.hpp"

using namespace loom;
using namespace loom::testing;
using Catch::Contains;

namespace {

std::string load_error(const std::filesystem::path& root, const ImageFolderOptions& o = {}) {
  try {
    load_image_folder(root, o);
  } catch (const DataError& e) {
    return e.what();
  }
  return "no error";
}

}  // namespace

TEST_CASE("An image folder loads with sorted class names as labels, converted as loom predict converts",
          "[image_folder]") {
  TempDir dir;
  const auto files = write_image_folder(dir / "photos", {"sandal", "boot", "coat"}, 4);
  std::ostringstream log;
  const ImageFolder f = load_image_folder(dir / "photos", {.progress = &log});
  CHECK(f.class_names == std::vector<std::string>{"boot", "coat", "sandal"});
  CHECK(f.train.size() == 12);
  CHECK(f.train.num_classes() == 3);
  CHECK(f.train.shape() == Shape::image(28, 28, 1));
  CHECK(f.train.class_counts() == std::vector<Index>{4, 4, 4});
  CHECK(!f.validation);
  CHECK(f.skipped.empty());
  CHECK_THAT(log.str(), Contains("Reading 12 images in 3 classes"));
  // Each sample is its file through fashion_mnist::preprocess, the file's folder its label.
  for (Index i = 0; i < f.train.size(); ++i) {
    bool found = false;
    for (const auto& file : files) {
      const Image seen = fashion_mnist::preprocess(read_image(file)).image;
      const std::string cls = file.parent_path().filename().string();
      if (std::equal(seen.pixels.begin(), seen.pixels.end(), f.train.image_bytes(i).begin()) &&
          f.class_names[static_cast<std::size_t>(f.train.label(i))] == cls)
        found = true;
    }
    CHECK(found);
  }
}

TEST_CASE("An image folder resized as it is for a colour model, split for validation, thread-independent",
          "[image_folder]") {
  TempDir dir;
  write_image_folder(dir / "photos", {"a", "b"}, 10);
  const ImageFolderOptions o{.shape = Shape::image(12, 16, 3), .conversion = ImageConversion::Resize,
                             .validation_split = 0.25, .seed = 3};
  const int before = threads();
  set_threads(1);
  const ImageFolder one = load_image_folder(dir / "photos", o);
  set_threads(2);
  const ImageFolder two = load_image_folder(dir / "photos", o);
  set_threads(before);
  CHECK(one.train.shape() == Shape::image(12, 16, 3));
  REQUIRE(one.validation);
  CHECK(one.train.size() == 15);
  CHECK(one.validation->size() == 5);
  CHECK(one.validation->num_classes() == 2);
  CHECK(std::ranges::equal(one.train.pixels(), two.train.pixels()));
  CHECK(std::ranges::equal(one.validation->labels(), two.validation->labels()));
  // Another seed chooses other validation samples.
  ImageFolderOptions other = o;
  other.seed = 4;
  CHECK(!std::ranges::equal(load_image_folder(dir / "photos", other).validation->pixels(), one.validation->pixels()));
  CHECK_THROWS_AS(load_image_folder(dir / "photos", {.shape = Shape::image(12, 16, 1)}), UsageError);
  CHECK_THROWS_AS(load_image_folder(dir / "photos", {.validation_split = 1.0}), UsageError);
}

TEST_CASE("A shape the conversion cannot make is a UsageError naming it, before any file is read", "[image_folder]") {
  TempDir dir;
  write_image_folder(dir / "photos", {"a", "b"}, 2);
  const auto usage_error = [&](const ImageFolderOptions& o) -> std::string {
    try {
      load_image_folder(dir / "photos", o);
    } catch (const UsageError& e) {
      return e.what();
    }
    return "no UsageError";
  };
  CHECK_THAT(usage_error({.shape = Shape::flat(784)}), Contains("the sample shape must be (H, W, C), got (None, 784)"));
  for (const Index channels : {2, 4})
    CHECK_THAT(usage_error({.shape = Shape::image(12, 16, channels), .conversion = ImageConversion::Resize}),
               Contains("images convert to 1 (grey) or 3 (RGB) channels, not " + std::to_string(channels)));
  // Too large: refused up front, not as every file failing and being skipped.
  CHECK_THAT(usage_error({.shape = Shape::image(4097, 4097, 1)}),
             Contains("shape (None, 4097, 4097, 1) is too large") && Contains("at most 4096 x 4096"));
  CHECK_THAT(usage_error({.shape = Shape::image(max_image_side + 1, 4, 3), .conversion = ImageConversion::Resize}),
             Contains("shape (None, 32769, 4, 3) is too large"));
  CHECK_THAT(usage_error({.shape = Shape::image(4, max_image_side + 1, 1), .conversion = ImageConversion::Resize}),
             Contains("shape (None, 4, 32769, 1) is too large"));
  CHECK_THAT(usage_error({.shape = Shape::image(8193, 8193, 1), .conversion = ImageConversion::Resize}),
             Contains("shape (None, 8193, 8193, 1) is too large"));
  CHECK_THAT(usage_error({.shape = Shape::image(4, 4, 1), .validation_split = -1e-10}),
             Contains("validation_split must be in [0, 1), got -1e-10"));
  // Up front: a missing folder is not even looked at.
  CHECK_THROWS_AS(load_image_folder(dir / "missing", {.shape = Shape::image(4097, 4097, 1)}), UsageError);
  // convert_for_input, the step applied to each file, refuses such options alike.
  const Image grey(4, 4, 1, 128);
  CHECK_THROWS_WITH(convert_for_input(grey, {.shape = Shape::image(4097, 4097, 1)}),
                    Contains("shape (None, 4097, 4097, 1) is too large"));
}

TEST_CASE("Unreadable files are skipped and listed, or refused by name", "[image_folder]") {
  TempDir dir;
  write_image_folder(dir / "photos", {"a", "b"}, 3);
  std::ofstream(dir / "photos" / "a" / "notes.txt") << "not an image";
  const ImageFolder f = load_image_folder(dir / "photos");
  CHECK(f.train.size() == 6);
  REQUIRE(f.skipped.size() == 1);
  CHECK(f.skipped[0].path == dir / "photos" / "a" / "notes.txt");
  CHECK(!f.skipped[0].reason.empty());
  CHECK_THAT(load_error(dir / "photos", {.skip_unreadable = false}), Contains("notes.txt"));
}

TEST_CASE("Bad image folders are DataErrors naming the path", "[image_folder]") {
  TempDir dir;
  CHECK_THAT(load_error(dir / "missing"), Contains("missing: no such folder"));
  std::filesystem::create_directories(dir / "empty");
  CHECK_THAT(load_error(dir / "empty"), Contains("empty: the folder is empty"));
  touch(dir / "flat" / "x.png");
  CHECK_THAT(load_error(dir / "flat"), Contains("flat: no class sub-folders"));
  write_image_folder(dir / "one_empty", {"a"}, 2);
  std::filesystem::create_directories(dir / "one_empty" / "b");
  CHECK_THAT(load_error(dir / "one_empty"), Contains("class folder \"b\" holds no image files"));
  write_image_folder(dir / "unreadable", {"a"}, 2);
  touch(dir / "unreadable" / "b" / "broken.png");
  CHECK_THAT(load_error(dir / "unreadable"), Contains("class folder \"b\" holds no readable image"));
  CHECK_THAT(load_error(dir / "unreadable", {.validation_split = 0.1}), Contains("b"));
  write_image_folder(dir / "small", {"a", "b"}, 1);
  CHECK_THAT(load_error(dir / "small", {.validation_split = 0.1}), Contains("leaves no validation images"));
}
