#pragma once
// The names a report shows for classes 0..K-1: the caller's names (for
// Fashion-MNIST, loom::fashion_mnist::class_names), or the class numbers
// "0", "1", ... when none are given.
//
// Thread safety: pure function; safe from many threads.

#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "loom/error.hpp"
#include "loom/tensor.hpp"

namespace loom {

/// names itself when it holds num_classes names, the numbers "0".."K-1" when it is empty;
/// any other count is a UsageError.
inline std::vector<std::string> class_names_or_numbers(std::span<const std::string> names, Index num_classes) {
  if (names.empty()) {
    std::vector<std::string> numbers;
    for (Index c = 0; c < num_classes; ++c) numbers.push_back(std::to_string(c));
    return numbers;
  }
  if (static_cast<Index>(names.size()) != num_classes)
    throw UsageError("class names: " + std::to_string(names.size()) + " names given for " +
                     std::to_string(num_classes) + " classes; give one name per class, or none");
  return {names.begin(), names.end()};
}

/// string_view names (e.g. loom::fashion_mnist::class_names) copied into strings.
inline std::vector<std::string> to_class_names(std::span<const std::string_view> names) {
  return {names.begin(), names.end()};
}

}  // namespace loom
