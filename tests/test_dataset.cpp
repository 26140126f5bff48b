// Dataset (bytes in, float batches out) and the Fashion-MNIST loader: finding
// the files, loading them, and the real test set when it is installed.

#include <catch2/catch.hpp>

#include "temp_dir.hpp"

#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include "loom/data/dataset.hpp"
#include "loom/data/fashion_mnist.hpp"
#include "loom/data/idx.hpp"
#include "loom/error.hpp"

namespace fs = std::filesystem;
namespace fm = loom::fashion_mnist;
using Catch::Matchers::Contains;
using Bytes = std::vector<std::uint8_t>;
using loom::Index;
using loom::testing::touch;

namespace {

struct DatasetTempDir : loom::testing::TempDir {
  DatasetTempDir() : TempDir("loom-test-dataset") {}
};

// Sets (or unsets, with nullopt) an environment variable for one scope.
struct ScopedEnv {
  std::string name;
  std::optional<std::string> saved;
  ScopedEnv(std::string n, const std::optional<std::string>& value) : name(std::move(n)) {
    if (const char* old = std::getenv(name.c_str())) saved = old;
    if (value) ::setenv(name.c_str(), value->c_str(), 1);
    else ::unsetenv(name.c_str());
  }
  ~ScopedEnv() {
    if (saved) ::setenv(name.c_str(), saved->c_str(), 1);
    else ::unsetenv(name.c_str());
  }
};

// Changes the working directory for one scope.
struct ScopedCwd {
  fs::path saved = fs::current_path();
  explicit ScopedCwd(const fs::path& p) { fs::current_path(p); }
  ~ScopedCwd() { fs::current_path(saved); }
};

// The four files, empty: find_data_dir looks only at names.
void touch_all(const fs::path& dir) {
  for (auto name : {fm::train_images, fm::train_labels, fm::test_images, fm::test_labels})
    touch(dir / std::string(name));
}

// 2 x 3 images whose pixels are 10 * sample + position, labels 7 and 2.
loom::Dataset small() { return loom::Dataset({0, 1, 2, 3, 4, 5, 10, 11, 12, 13, 14, 15}, {7, 2}, loom::Shape{1, 3, 2}); }

}  // namespace

TEST_CASE("Dataset from vectors: size, shape, labels, image bytes", "[dataset]") {
  const loom::Dataset d = small();
  CHECK(d.size() == 2);
  CHECK(d.shape() == loom::Shape{1, 3, 2});
  CHECK(d.num_classes() == 8);  // largest label + 1
  CHECK(d.label(0) == 7);
  CHECK(d.label(1) == 2);
  const auto img = d.image_bytes(1);
  CHECK(Bytes(img.begin(), img.end()) == Bytes{10, 11, 12, 13, 14, 15});
  CHECK(d.pixels().size() == 12);
  CHECK(d.labels().size() == 2);
  const std::vector<Index> counts{0, 0, 1, 0, 0, 0, 0, 1};
  CHECK(d.class_counts() == counts);
  CHECK(loom::Dataset({1, 2}, {0, 1}, loom::Shape{1}, 10).num_classes() == 10);
  REQUIRE_THROWS_AS(d.label(2), loom::UsageError);
  REQUIRE_THROWS_WITH(d.image_bytes(-1), Contains("Dataset::image_bytes: index -1 is out of range [0, 2)"));
}

TEST_CASE("Dataset::gather scales bytes to [0, 1] and keeps the order asked for", "[dataset]") {
  const loom::Dataset d({0, 255, 51, 128}, {3, 1}, loom::Shape{1, 2, 1}, 4);
  loom::Tensor x;
  std::vector<loom::Label> y(3, -1);
  const std::vector<Index> idx{1, 0, 1};
  d.gather(idx, x, y);

  REQUIRE(x.dimension(0) == 3);  // (3, 1, 2, 1)
  REQUIRE(x.dimension(1) == 1);
  REQUIRE(x.dimension(2) == 2);
  REQUIRE(x.dimension(3) == 1);
  CHECK(x(0, 0, 0, 0) == 51.0f / 255.0f);
  CHECK(x(0, 0, 1, 0) == 128.0f / 255.0f);
  CHECK(x(1, 0, 0, 0) == 0.0f);  // exactly 0 and 1 at the ends
  CHECK(x(1, 0, 1, 0) == 1.0f);
  CHECK(x(2, 0, 0, 0) == x(0, 0, 0, 0));
  CHECK(y == std::vector<loom::Label>{1, 3, 1});

  // A batch of the same size reuses the buffer: no allocation in the training loop.
  const float* buffer = x.data();
  d.gather(idx, x, y);
  CHECK(x.data() == buffer);
}

TEST_CASE("Dataset::gather rejects bad indices and a short label buffer", "[dataset]") {
  const loom::Dataset d = small();
  loom::Tensor x;
  std::vector<loom::Label> y(2);
  const std::vector<Index> past_end{0, 2};
  REQUIRE_THROWS_WITH(d.gather(past_end, x, y), Contains("Dataset::gather: index 2 is out of range [0, 2)"));
  std::vector<loom::Label> one(1);
  const std::vector<Index> both{0, 1};
  REQUIRE_THROWS_AS(d.gather(both, x, one), loom::ShapeError);
  REQUIRE_THROWS_WITH(d.gather(both, x, one), Contains("labels holds 1 entries but 2 samples were asked for"));
}

TEST_CASE("Dataset rejects empty, inconsistent and out-of-range data", "[dataset]") {
  REQUIRE_THROWS_AS(loom::Dataset({}, {}, loom::Shape{28, 28, 1}), loom::DataError);
  REQUIRE_THROWS_WITH(loom::Dataset({}, {}, loom::Shape{28, 28, 1}), Contains("empty data set (0 samples)"));
  REQUIRE_THROWS_WITH(loom::Dataset(Bytes(5), {0, 1}, loom::Shape{1, 3, 1}),
                      Contains("5 image bytes do not hold 2 samples of shape (None, 1, 3, 1) (expected 2 x 3 bytes)"));
  REQUIRE_THROWS_AS(loom::Dataset(Bytes(3), {0, 1, 10}, loom::Shape{1}, 10), loom::DataError);
  REQUIRE_THROWS_WITH(loom::Dataset(Bytes(3), {0, 1, 10}, loom::Shape{1}, 10),
                      Contains("label 10 at index 2 is outside the 10 classes [0, 9]"));
  REQUIRE_THROWS_AS(loom::Dataset(Bytes(1), {0}, loom::Shape{1}, 0), loom::UsageError);
}

TEST_CASE("Dataset::head and slice take a prefix and a range, keeping num_classes", "[dataset]") {
  const loom::Dataset d({0, 1, 2, 3, 4}, {4, 3, 2, 1, 0}, loom::Shape{1}, 10);
  const loom::Dataset h = d.head(2);
  CHECK(h.size() == 2);
  CHECK(h.num_classes() == 10);
  CHECK(h.label(1) == 3);
  CHECK(h.image_bytes(1)[0] == 1);
  CHECK(d.head(100).size() == 5);  // as x[:100] in Python
  REQUIRE_THROWS_AS(d.head(0), loom::UsageError);

  const loom::Dataset s = d.slice(3, 5);
  CHECK(s.size() == 2);
  CHECK(s.label(0) == 1);
  CHECK(s.image_bytes(1)[0] == 4);
  REQUIRE_THROWS_WITH(d.slice(5, 9), Contains("selects no samples"));
}

TEST_CASE("Dataset::from_idx pairs an image file with a label file", "[dataset]") {
  DatasetTempDir dir;
  loom::write_idx(dir / "images.gz", {{3, 2, 2}, Bytes{0, 0, 0, 0, 255, 255, 255, 255, 1, 2, 3, 4}});
  loom::write_idx(dir / "labels", {{3}, Bytes{5, 0, 9}});
  const loom::Dataset d = loom::Dataset::from_idx(dir / "images.gz", dir / "labels", 10);
  CHECK(d.size() == 3);
  CHECK(d.shape() == loom::Shape{2, 2, 1});
  CHECK(d.num_classes() == 10);
  CHECK(d.label(2) == 9);
  CHECK(d.image_bytes(2)[3] == 4);

  loom::write_idx(dir / "two-labels", {{2}, Bytes{5, 0}});
  REQUIRE_THROWS_AS(loom::Dataset::from_idx(dir / "images.gz", dir / "two-labels"), loom::DataError);
  REQUIRE_THROWS_WITH(loom::Dataset::from_idx(dir / "images.gz", dir / "two-labels"),
                      Contains((dir / "images.gz").string() + " holds 3 images but " + (dir / "two-labels").string() +
                               " holds 2 labels"));
  // Swapped arguments fail on the magic number, naming the file.
  REQUIRE_THROWS_WITH(loom::Dataset::from_idx(dir / "labels", dir / "images.gz"),
                      Contains((dir / "labels").string() + ": expected IDX magic 2051"));
  // A label outside the classes names the label file.
  loom::write_idx(dir / "bad-labels", {{3}, Bytes{5, 12, 9}});
  REQUIRE_THROWS_WITH(loom::Dataset::from_idx(dir / "images.gz", dir / "bad-labels", 10),
                      Contains((dir / "bad-labels").string() + ": label 12 at index 1 is outside the 10 classes"));
}

TEST_CASE("fashion_mnist: class names and file spellings", "[fashion_mnist]") {
  CHECK(fm::class_names.size() == 10);
  CHECK(fm::class_names[0] == "T-shirt/top");
  CHECK(fm::class_names[9] == "Ankle boot");
  CHECK(fm::spellings("train-images-idx3-ubyte") ==
        std::vector<std::string>{"train-images-idx3-ubyte", "train-images.idx3-ubyte", "train-images-idx3-ubyte.gz",
                                 "train-images.idx3-ubyte.gz"});
}

TEST_CASE("fashion_mnist::find_data_dir: explicit, then $LOOM_DATA_DIR, then ./data/fashion-mnist", "[fashion_mnist]") {
  DatasetTempDir dir;
  const fs::path a = dir / "a", b = dir / "b";
  touch_all(a);
  // b mixes every accepted spelling.
  touch(b / "train-images.idx3-ubyte");
  touch(b / "train-labels-idx1-ubyte.gz");
  touch(b / "t10k-images.idx3-ubyte.gz");
  touch(b / "t10k-labels-idx1-ubyte");
  CHECK(fm::find_file(b, fm::test_images) == b / "t10k-images.idx3-ubyte.gz");

  {
    ScopedEnv env(fm::env_var, b.string());
    CHECK(fm::find_data_dir(a) == a);  // explicit wins over the environment
    CHECK(fm::find_data_dir() == b);
  }
  {
    ScopedEnv env(fm::env_var, dir.path.string());  // a data root: its fashion-mnist/ subdirectory
    touch_all(dir / "fashion-mnist");
    CHECK(fm::find_data_dir() == dir / "fashion-mnist");
  }
  {
    ScopedEnv env(fm::env_var, std::nullopt);
    touch_all(dir / "cwd" / "data" / "fashion-mnist");
    ScopedCwd cwd(dir / "cwd");
    // Relative to the working directory, returned absolute.
    CHECK(fm::find_data_dir() == dir / "cwd" / "data" / "fashion-mnist");
  }
}

TEST_CASE("fashion_mnist::find_data_dir: a directory the user named must hold the files", "[fashion_mnist]") {
  DatasetTempDir dir;
  const fs::path a = dir / "a";
  touch_all(a);
  fs::remove(a / "t10k-labels-idx1-ubyte");

  REQUIRE_THROWS_AS(fm::find_data_dir(a), loom::DataError);
  REQUIRE_THROWS_WITH(fm::find_data_dir(a),
                      Contains(a.string() + " (given explicitly): lacks t10k-labels-idx1-ubyte") &&
                          Contains("apt-get install dataset-fashion-mnist") && Contains("data/fetch.sh"));
  // Not silently replaced by another copy, here or in /usr/share.
  ScopedEnv env(fm::env_var, (dir / "nowhere").string());
  REQUIRE_THROWS_WITH(fm::find_data_dir(), Contains((dir / "nowhere").string() + " (from $LOOM_DATA_DIR): does not exist") &&
                                               Contains((dir / "nowhere" / "fashion-mnist").string()));
}

TEST_CASE("fashion_mnist::first_data_dir lists every directory, why, and what it looked for", "[fashion_mnist]") {
  DatasetTempDir dir;
  touch(dir / "partial" / "train-images-idx3-ubyte.gz");
  const std::vector<fs::path> dirs{dir / "missing", dir / "partial"};
  REQUIRE_THROWS_AS(fm::first_data_dir(dirs), loom::DataError);
  REQUIRE_THROWS_WITH(
      fm::first_data_dir(dirs),
      Contains("Fashion-MNIST not found. Looked in:") && Contains((dir / "missing").string() + ": does not exist") &&
          Contains((dir / "partial").string() +
                   ": lacks train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte") &&
          Contains("for the files train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, "
                   "t10k-labels-idx1-ubyte (each also accepted as train-images.idx3-ubyte") &&
          Contains("sudo apt-get install dataset-fashion-mnist") && Contains("run data/fetch.sh"));
}

TEST_CASE("fashion_mnist::load_train and load_test read a directory of IDX files", "[fashion_mnist]") {
  DatasetTempDir dir;
  loom::write_idx(dir / "train-images.idx3-ubyte.gz", {{2, 28, 28}, Bytes(2 * 28 * 28, 7)});
  loom::write_idx(dir / "train-labels-idx1-ubyte", {{2}, Bytes{0, 9}});
  const loom::Dataset train = fm::load_train(dir.path);
  CHECK(train.size() == 2);
  CHECK(train.shape() == loom::Shape{28, 28, 1});
  CHECK(train.num_classes() == 10);

  REQUIRE_THROWS_WITH(fm::load_test(dir.path),
                      Contains("lacks t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte (looked for t10k-images-idx3-ubyte, "
                               "t10k-images.idx3-ubyte, t10k-images-idx3-ubyte.gz"));
  loom::write_idx(dir / "t10k-images-idx3-ubyte", {{1, 28, 28}, Bytes(28 * 28, 0)});
  loom::write_idx(dir / "t10k-labels-idx1-ubyte", {{1}, Bytes{10}});
  REQUIRE_THROWS_WITH(fm::load_test(dir.path), Contains("label 10 at index 0 is outside the 10 classes"));
}

// The real data is part of the test set-up (scripts/install-deps.sh installs
// dataset-fashion-mnist): its absence is a failure, not a skip.
TEST_CASE("fashion_mnist: the real test set has 10,000 28x28 images, 1,000 per class", "[fashion_mnist][real]") {
  const loom::Dataset test = fm::load_test(fm::find_data_dir());
  CHECK(test.size() == 10000);
  CHECK(test.shape() == loom::Shape{28, 28, 1});
  CHECK(test.num_classes() == 10);
  CHECK(test.class_counts() == std::vector<Index>(10, 1000));
  CHECK(test.label(0) == 9);  // the first test image is an ankle boot
}
