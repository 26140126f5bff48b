#pragma once
// Denormal floats (below ~1e-38) are up to 100x slower on x86. Late in
// training, Adam's moments and tiny gradients fall into that range and an
// epoch slowed from 1 s to 35 s in our first runs. Flushing them to zero
// changes results by less than float rounding does, so loom flushes while it
// computes: this guard sets flush-to-zero and denormals-are-zero on the calling
// thread and on OpenMP's worker threads, and restores the calling thread's
// mode when it ends. (OpenMP workers keep the mode; they are compute threads.)
//
// Guards nest: one inside another (train_batch inside fit) leaves the
// workers alone, so the batch loop does not wake the team for it.
//
// Thread safety: affects only the calling thread and OpenMP's workers.

#if defined(__SSE__) || defined(__x86_64__)
#include <xmmintrin.h>
#define LOOM_HAS_MXCSR 1
#endif

namespace loom {

class FlushDenormals {
 public:
  /// workers = false: only the calling thread (work that will not fan out,
  /// such as one image's inference, need not wake OpenMP's team).
  explicit FlushDenormals(bool workers = true) {
#ifdef LOOM_HAS_MXCSR
    saved_ = _mm_getcsr();
    // Inside an outer guard (fit around train_batch) the workers flush already.
    const bool outer = (saved_ & kFlushBits) == kFlushBits;
    if (workers && !outer) {  // not an `if` clause: a team of one still costs system calls (parallel.hpp)
#pragma omp parallel
      _mm_setcsr(_mm_getcsr() | kFlushBits);
    }
    _mm_setcsr(saved_ | kFlushBits);
#endif
  }
  ~FlushDenormals() {
#ifdef LOOM_HAS_MXCSR
    _mm_setcsr(saved_);
#endif
  }
  FlushDenormals(const FlushDenormals&) = delete;
  FlushDenormals& operator=(const FlushDenormals&) = delete;

 private:
#ifdef LOOM_HAS_MXCSR
  static constexpr unsigned kFlushBits = 0x8040;  // FTZ (bit 15) | DAZ (bit 6)
  unsigned saved_ = 0;
#endif
};

}  // namespace loom
