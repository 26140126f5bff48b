#pragma once
// What the loom children of the comparisons (loom_reference, loom_suite)
// measure with: peak memory, medians, wall time.

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <vector>

namespace loom::bench {

// ru_maxrss of this process, in MB.
inline double peak_rss_mb() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_maxrss) / 1024.0;  // Linux: kilobytes
}

inline double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

inline double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace loom::bench
