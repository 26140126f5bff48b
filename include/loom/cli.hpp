#pragma once
// Command-line flags for loom's programs (examples, benchmarks, tools): every
// flag takes a value ("--epochs 5") unless it is a switch ("--json"); other
// arguments are positional; -h or --help prints the usage and exits;
// an unknown flag, a missing value or a bad number is a UsageError that
// carries the usage text. run_main maps a program's outcome to its exit
// status: 0 (or the body's own), 1 for an error, 2 for a usage error.
//
// Thread safety: parsing reads only its arguments; printing the usage writes to the stream given.

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <exception>
#include <iostream>
#include <initializer_list>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include "loom/error.hpp"

namespace loom::cli {

/// The whole number in value, at least min and at most T's largest (a flag
/// kept in an int: parse_int<int>, so that 4294967297 is refused, not
/// wrapped to 1); otherwise a UsageError naming the flag.
template <typename T = long long>
T parse_int(const std::string& flag, const char* value, long long min) {
  constexpr long long max = std::numeric_limits<T>::max();
  char* end = nullptr;
  errno = 0;
  const long long v = std::strtoll(value, &end, 10);
  if (errno || end == value || *end != '\0' || v < min || v > max)
    throw UsageError(flag + " expects a whole number >= " + std::to_string(min) +
                     (max < std::numeric_limits<long long>::max() ? " and <= " + std::to_string(max) : "") +
                     ", got \"" + value + "\"");
  return static_cast<T>(v);
}

/// `count` comma-separated whole numbers in value ("1,2,1"), each at least
/// min; otherwise a UsageError naming the flag.
inline std::vector<long long> parse_int_list(const std::string& flag, const char* value, std::size_t count,
                                             long long min) {
  std::vector<long long> out;
  bool ok = true;
  for (std::string_view rest = value; ok;) {
    const std::size_t comma = rest.find(',');
    const std::string item(rest.substr(0, comma));
    char* end = nullptr;
    errno = 0;
    const long long v = std::strtoll(item.c_str(), &end, 10);
    ok = !item.empty() && !errno && *end == '\0' && v >= min;
    out.push_back(v);
    if (comma == std::string_view::npos) break;
    rest.remove_prefix(comma + 1);
  }
  if (!ok || out.size() != count)
    throw UsageError(flag + " expects " + std::to_string(count) + " comma-separated whole numbers >= " +
                     std::to_string(min) + ", got \"" + value + "\"");
  return out;
}

/// The decimal number in value; otherwise a UsageError naming the flag.
inline double parse_number(const std::string& flag, const char* value) {
  char* end = nullptr;
  const double v = std::strtod(value, &end);
  if (end == value || *end != '\0') throw UsageError(flag + ": expected a number, got \"" + std::string(value) + "\"");
  return v;
}

/// Calls on_flag(flag, value) for each "--flag value" pair and for each
/// switch (a flag listed in `switches`, which takes no value: value is null),
/// and on_positional(arg) for each argument that is not a flag. on_flag
/// returns false for a flag it does not know. argv[first..] are parsed.
template <typename OnFlag, typename OnPositional>
void parse_args(int argc, char** argv, int first, const std::string& usage,
                std::initializer_list<std::string_view> switches, OnFlag&& on_flag, OnPositional&& on_positional) {
  for (int i = first; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "-h" || flag == "--help") {
      std::cout << usage;
      std::exit(0);
    }
    if (flag.size() < 2 || flag[0] != '-') {
      on_positional(flag);
      continue;
    }
    const bool is_switch = std::find(switches.begin(), switches.end(), flag) != switches.end();
    if (!is_switch && i + 1 >= argc) throw UsageError("unknown option or missing value: " + flag + "\n" + usage);
    if (!on_flag(flag, is_switch ? nullptr : argv[++i])) throw UsageError("unknown option " + flag + "\n" + usage);
  }
}

/// Runs a program's body and turns its outcome into the exit status every
/// loom program uses: body's own status; 2 after a UsageError (bad flags);
/// 1 after any other exception (bad data, files). Errors go to stderr,
/// prefixed with the program's name.
template <typename Body>
int run_main(const std::string& program, Body&& body) {
  try {
    return body();
  } catch (const UsageError& e) {
    std::cerr << program << ": " << e.what() << '\n';
    return 2;
  } catch (const std::exception& e) {
    std::cerr << program << ": error: " << e.what() << '\n';
    return 1;
  }
}

/// parse_args for programs that take only "--flag value" pairs.
template <typename OnFlag>
void parse_flags(int argc, char** argv, const std::string& usage, OnFlag&& on_flag) {
  parse_args(argc, argv, 1, usage, {}, on_flag, [&](const std::string& arg) {
    throw UsageError("unexpected argument \"" + arg + "\"\n" + usage);
  });
}

}  // namespace loom::cli
