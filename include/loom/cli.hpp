#pragma once
// Command-line flags for loom's programs (examples, benchmarks, tools): every
// flag takes a value ("--epochs 5"); -h or --help prints the usage and exits;
// an unknown flag, a missing value or a bad number is a UsageError that
// carries the usage text.

#include <cerrno>
#include <cstdlib>
#include <iostream>
#include <string>

#include "loom/error.hpp"

namespace loom::cli {

/// The whole number in value, at least min; otherwise a UsageError naming the flag.
inline long long parse_int(const std::string& flag, const char* value, long long min) {
  char* end = nullptr;
  errno = 0;
  const long long v = std::strtoll(value, &end, 10);
  if (errno || end == value || *end != '\0' || v < min)
    throw UsageError(flag + " expects a whole number >= " + std::to_string(min) + ", got \"" + value + "\"");
  return v;
}

/// Calls on_flag(flag, value) for each "--flag value" pair; on_flag returns
/// false for a flag it does not know.
template <typename OnFlag>
void parse_flags(int argc, char** argv, const std::string& usage, OnFlag&& on_flag) {
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "-h" || flag == "--help") {
      std::cout << usage;
      std::exit(0);
    }
    if (i + 1 >= argc) throw UsageError("unknown option or missing value: " + flag + "\n" + usage);
    if (!on_flag(flag, argv[++i])) throw UsageError("unknown option " + flag + "\n" + usage);
  }
}

}  // namespace loom::cli
