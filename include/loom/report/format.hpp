#pragma once
// printf-style formatting into a std::string, for the report's tables and
// labels (libstdc++ 12 has no std::format).
//
// Thread safety: pure functions; safe from many threads.

#include <algorithm>
#include <cstdio>
#include <string>

namespace loom::report {

template <typename... Args>
std::string format(const char* fmt, Args... args) {
  const int n = std::snprintf(nullptr, 0, fmt, args...);
  std::string s(static_cast<std::size_t>(std::max(n, 0)), '\0');
  std::snprintf(s.data(), s.size() + 1, fmt, args...);
  return s;
}

/// v with digits decimals: fixed(0.96712, 2) == "0.97".
inline std::string fixed(double v, int digits) { return format("%.*f", digits, v); }

}  // namespace loom::report
