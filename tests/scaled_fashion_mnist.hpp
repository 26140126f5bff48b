#pragma once
// The real Fashion-MNIST cut to the tests' data scale (test_scale.hpp), for
// tests that run the `loom` tool on it: the tool validates on and scores the
// whole test set, which under the sanitizers' scale would otherwise take
// minutes while the training images are cut to a tenth. At full scale it is
// the data directory itself; cut, a copy of the first images of each file in
// the test's temp dir.

#include <algorithm>
#include <filesystem>
#include <string>

#include "loom/data/fashion_mnist.hpp"
#include "loom/data/idx.hpp"
#include "temp_dir.hpp"
#include "test_scale.hpp"

namespace loom::testing {

/// A Fashion-MNIST directory with scaled(60000) training and scaled(10000, at_least_test) test images.
inline std::filesystem::path scaled_fashion_mnist(const TempDir& dir, Index at_least_test = 500) {
  const std::filesystem::path source = fashion_mnist::find_data_dir();
  if (full_data()) return source;
  const std::filesystem::path out = dir / "fashion-mnist";
  std::filesystem::create_directories(out);
  const auto cut = [&](std::string_view name, Index n) {
    IdxArray a = read_idx(*fashion_mnist::find_file(source, name));
    const Index per_item = static_cast<Index>(a.bytes.size()) / a.count();
    a.dims[0] = std::min(n, a.count());
    a.bytes.resize(static_cast<std::size_t>(a.dims[0] * per_item));
    write_idx(out / std::string(name), a);
  };
  const Index train = scaled(60000), test = scaled(10000, at_least_test);
  cut(fashion_mnist::train_images, train);
  cut(fashion_mnist::train_labels, train);
  cut(fashion_mnist::test_images, test);
  cut(fashion_mnist::test_labels, test);
  return out;
}

}  // namespace loom::testing
