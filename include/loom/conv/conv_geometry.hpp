#pragma once
// The shapes of one convolution, as every algorithm of the engine sees them:
// one sample's input (H, W, C), the kernel (KH, KW, C, F), strides, the
// padding before the first row and column (Keras/TensorFlow rules, see
// layers/window.hpp) and the output (OH, OW, F). Batches are NHWC.
//
//   x      (N, H, W, C)
//   kernel (KH, KW, C, F)   seen as the matrix W (K, F), K = KH*KW*C
//   bias   (F)
//   z      (N, OH, OW, F)   z[n, oy, ox, f] = b[f] + sum over (ky, kx, c) of
//                           x[n, oy*SH + ky - pad_top, ox*SW + kx - pad_left, c] W[ky, kx, c, f]
//                           (zero where the input index falls outside the image)
//
// Thread safety: plain values; safe from many threads.

#include <algorithm>
#include <concepts>

#include "loom/tensor.hpp"

namespace loom::conv {

struct ConvGeometry {
  Index h = 0, w = 0, c = 0;   // input height, width, channels
  Index kh = 0, kw = 0, f = 0; // kernel height, width, filters
  Index sh = 1, sw = 1;        // strides
  Index pad_top = 0, pad_left = 0;
  Index oh = 0, ow = 0;        // output height, width

  Index input_size() const { return h * w * c; }   // floats per input sample
  Index pixels() const { return oh * ow; }         // output pixels per sample
  Index output_size() const { return pixels() * f; }
  // floats per sample of a 2x2, stride-2 max pool of the output (an odd last row or column left out)
  Index pooled_size() const { return (oh / 2) * (ow / 2) * f; }
  Index patch() const { return kh * kw * c; }      // K: values under one window
  /// Multiply-adds of one sample's forward pass, computed directly.
  Index macs() const { return pixels() * patch() * f; }
};

/// The layer's parameters as the engine reads them.
struct ConvWeights {
  const float* kernel;  // (KH, KW, C, F)
  const float* bias;    // (F)
};

/// A batch cut into chunks of whole samples, `per` samples each (the last may
/// hold fewer). Chunks are the engine's units of parallel work: fixed by the
/// shapes, never by the thread count, so results do not depend on it.
struct SampleChunks {
  Index n = 0, per = 1;
  SampleChunks(Index samples, Index per_chunk) : n(samples), per(per_chunk < 1 ? 1 : per_chunk) {}
  /// Chunks of about per_chunk samples, evened out: fewer than 16 chunks
  /// become a multiple of 4 of equal size, so 2 or 4 threads get the same
  /// share (32 samples in chunks of 14 left one of 2 threads a single chunk
  /// of 4), and a batch that fits one chunk is still cut in 4 (128 samples of
  /// a 4x4 map, one Winograd tile each, ran on one thread).
  static SampleChunks balanced(Index samples, Index per_chunk) {
    per_chunk = std::max<Index>(1, per_chunk);
    Index count = (samples + per_chunk - 1) / per_chunk;
    if (count < 16) count = std::min(samples, (count + 3) / 4 * 4);
    return {samples, count < 1 ? 1 : (samples + count - 1) / count};
  }
  Index count() const { return (n + per - 1) / per; }
  Index first(Index chunk) const { return chunk * per; }
  Index end(Index chunk) const { return std::min(n, first(chunk) + per); }
  Index size(Index chunk) const { return end(chunk) - first(chunk); }
};

/// Work a caller runs on each range of samples [first, end) as soon as the
/// engine is done with it, on the thread that computed it, while that
/// thread's caches hold those samples' input (forward) and dx (backward):
/// Conv2D::set_sample_hook. Every sample is in exactly one range.
///
/// A reference to a callable of the caller's, not an owner: the hook lives
/// on the caller's stack for one call, and making it allocates nothing (a
/// std::function holding a lambda of three captures allocated on every
/// training step). Made from a named callable only, which must outlive it.
class SampleHook {
 public:
  template <typename F>
    requires std::invocable<const F&, Index, Index> && (!std::same_as<F, SampleHook>)
  explicit SampleHook(const F& f)
      : callable_(&f), call_([](const void* c, Index first, Index end) { (*static_cast<const F*>(c))(first, end); }) {}
  template <typename F>
  SampleHook(const F&&) = delete;  // a temporary callable would be gone before the engine calls it

  void operator()(Index first, Index end) const { call_(callable_, first, end); }

 private:
  const void* callable_;
  void (*call_)(const void*, Index, Index);
};

}  // namespace loom::conv
