#pragma once
// glibc gives large freed blocks back to the system at once: a block of
// 128 KB or more is a mapping of its own, unmapped by free, and a thread's
// heap hands its free top back. Inference allocates and frees as it goes (a
// layer's infer is const, so that many threads can call it, and keeps no
// buffers): every predict then faulted its activations' pages in again. The
// best recipe's ResNet predicted 256 images at 1,865 images/s with glibc's
// defaults and at 12,035 with the settings below (bench/loom_suite --model
// resnet, one run after the other), the page faults being most of the time.
//
// So loom asks glibc, once per process (the first Sequential built), to keep
// freed memory for reuse: blocks under 32 MB come from the heaps, and up to
// 128 MB free at a heap's top stays there. The cost: a process's resident
// size stays near its peak instead of shrinking after a large call.
// LOOM_KEEP_FREED_MEMORY=0, or a malloc setting of the user's own
// (GLIBC_TUNABLES naming glibc.malloc, MALLOC_MMAP_THRESHOLD_,
// MALLOC_TRIM_THRESHOLD_), leaves glibc's defaults alone.
//
// Thread safety: keep_freed_memory may be called from any thread; the first
// call decides.

#include <cstdlib>
#include <string_view>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace loom {

inline constexpr int kKeptBlockBytes = 32 << 20;    // M_MMAP_THRESHOLD: glibc's largest
inline constexpr int kKeptTopBytes = 128 << 20;     // M_TRIM_THRESHOLD

namespace detail {

/// Whether loom should change glibc's malloc settings, given the environment
/// variables that decide it (nullptr: unset).
inline bool wants_kept_memory(const char* loom_setting, const char* glibc_tunables, const char* mmap_threshold,
                              const char* trim_threshold) {
  if (loom_setting && std::string_view(loom_setting) == "0") return false;
  if (glibc_tunables && std::string_view(glibc_tunables).find("glibc.malloc") != std::string_view::npos) return false;
  return !mmap_threshold && !trim_threshold;
}

}  // namespace detail

/// Applies the settings above once per process; returns whether they are in
/// force (false without glibc, when the environment says no, or when glibc refused).
inline bool keep_freed_memory() {
  static const bool kept = [] {
#if defined(__GLIBC__)
    if (!detail::wants_kept_memory(std::getenv("LOOM_KEEP_FREED_MEMORY"), std::getenv("GLIBC_TUNABLES"),
                                   std::getenv("MALLOC_MMAP_THRESHOLD_"), std::getenv("MALLOC_TRIM_THRESHOLD_")))
      return false;
    return mallopt(M_MMAP_THRESHOLD, kKeptBlockBytes) == 1 && mallopt(M_TRIM_THRESHOLD, kKeptTopBytes) == 1;
#else
    return false;
#endif
  }();
  return kept;
}

}  // namespace loom
