#pragma once
// One form for every refused optimizer or schedule option:
//   "SGD: momentum must be in [0, 1), got 1.5"
// (the value as option_value_text in error.hpp prints it).

#include <string>
#include <string_view>

#include "loom/error.hpp"

namespace loom::detail {

/// UsageError "owner: option must <rule>, got <value>" unless ok.
inline void check_option(bool ok, std::string_view owner, std::string_view option, double value, std::string_view rule) {
  if (!ok)
    throw UsageError(std::string(owner) + ": " + std::string(option) + " must " + std::string(rule) + ", got " +
                     option_value_text(value));
}

}  // namespace loom::detail
