#pragma once
// Winograd convolution F(m x m, 3 x 3) for 3x3 stride-1 layers, the way
// NNPACK and oneDNN do it, over NHWC (see winograd_transforms.hpp for the
// algebra). With a = m + 2 and T tiles of m x m output pixels:
//
//   U  (a*a, C, F)   U[xi] = the kernel transformed, G g GT per (c, f)
//   V  (a*a, T, C)   V[xi][t] = tile t of the input transformed, BT d B per channel
//   Mx (a*a, T, F)   Mx[xi] = V[xi] U[xi]: one matrix product per tile position xi
//   z                each tile's AT Mx A, plus bias, ReLU, into the output pixels
//
// F(4x4, 3x3) does 36 multiply-adds per (tile, c, f) where the direct
// convolution does 16 * 9 = 144: a quarter. The element-wise stage, the
// bulk of the work, is a batched matrix product that runs near the GEMM peak.
//
// Backward is the adjoint of each stage, and reuses U from forward:
//   dMx[xi][t] = A dZ AT             the output gradient tile, transformed once
//                                    (dZ: dY masked by a fused ReLU; the bias
//                                    gradient summed from the same tiles)
//   dU[xi]     = V[xi]^T dMx[xi]     (C, F), summed over the chunks in chunk
//                                    order
//   dW         = GT dU G             per (c, f)
//   dV[xi]     = dMx[xi] U[xi]^T     (T, C), then B dV BT added onto the
//                                    input pixels under each tile: dx
// in one of two ways. Fused, when the kernel is small enough: chunks are
// cut into at most 8 fixed groups, and each group's thread takes its chunks
// one by one through dMx and V made again from x (both kept in that thread's
// cache), the group's own dU and dx; dW then sums the groups' dU in order.
// Forward then keeps no V: at 14x14 it is 2.25 times the input, written out
// in forward and read back in backward, where the step had evicted it from
// the caches (docs/benchmarks-history.md). Stage by stage, for larger kernels, with V
// kept by forward: dMx of the whole batch, dU one thread per xi over every
// chunk, then dx. The fused way keeps each thread on the data it wrote itself,
// which on a host whose two vCPUs are far apart made the seed model's
// training step 11 % faster (docs/benchmarks-history.md).
//
// Work is cut into chunks of whole samples (about 128 tiles) that run in
// parallel, one thread each: a chunk's transforms and products stay in cache
// (V and dMx are stored chunk by chunk), and dx tiles that overlap
// (neighbouring input tiles share two rows) are always added by the same
// thread. A batch of one chunk (a single image) spreads its transforms and
// products over the threads instead, when it holds enough work (the wide
// model's layers). Chunks and the order of every sum are fixed by the shapes, so
// results do not depend on the thread count; forward and infer share the same
// code and agree bit for bit. Winograd's results differ from im2col's by
// rounding (F(4x4): up to about 1e-5 of each tensor's scale; tested in
// test_conv_engine.cpp).
//
// Pooling: when a 2x2 MaxPool2D at stride 2 follows a layer with ReLU, the
// output stage can pool each m x m tile as it leaves the products (m is
// even, so every window lies inside one tile): forward_pooled writes the
// pooled map and the winning taps, never the full map, and backward builds
// each dZ tile from the pooled gradient, routed to the winning taps, while it
// reads it (maxpool_halves.hpp's rule both ways, so the values are the two
// layers', bit for bit).
//
// Inference keeps the transformed kernel with a copy of the weights it came
// from, and transforms again only when they changed (a byte compare): at one
// image, transforming the kernel cost as much as the convolution.
//
// Thread safety: infer is const and safe from many threads (scratch of its
// own; the kept kernel behind a reader-writer lock); forward/backward from one thread.

#include <algorithm>
#include <cstring>
#include <mutex>
#include <shared_mutex>
#include <utility>
#include <vector>

#include "loom/activation.hpp"
#include "loom/channel_normalization.hpp"
#include "loom/conv/conv_geometry.hpp"
#include "loom/elementwise.hpp"
#include "loom/gemm.hpp"
#include "loom/layers/maxpool_halves.hpp"

namespace loom::conv {

/// A kernel in the Winograd domain: U, a (C, F) matrix per tile position
/// (each padded by a cache line: src/winograd_kernel.hpp, kernel_slab), and
/// each U[xi] packed as the B of the products with it (packed once, not once
/// per chunk of tiles).
struct WinogradKernel {
  std::vector<float> u;
  std::vector<gemm::PackedB> packed;
};

/// A transformed kernel kept with the weights it was made from. Copies start empty.
class TransformedKernel {
 public:
  TransformedKernel() = default;
  TransformedKernel(const TransformedKernel&) {}
  TransformedKernel& operator=(const TransformedKernel&) {
    const std::unique_lock lock(mutex_);
    weights_.clear();
    kernel_ = {};
    return *this;
  }

  /// use(kernel) with the transform of `weights` (n floats), made by
  /// transform(weights, kernel) only when the weights are not the kept ones.
  template <typename Transform, typename Use>
  void use(const float* weights, std::size_t n, Transform&& transform, Use&& use) const {
    {
      const std::shared_lock lock(mutex_);
      if (holds(weights, n)) return use(std::as_const(kernel_));
    }
    {
      const std::unique_lock lock(mutex_);
      if (!holds(weights, n)) {
        weights_.clear();  // not kept until transformed: a throwing transform leaves nothing stale
        transform(weights, kernel_);
        weights_.assign(weights, weights + n);
      }
    }
    const std::shared_lock lock(mutex_);
    use(std::as_const(kernel_));
  }

 private:
  bool holds(const float* weights, std::size_t n) const {
    return n > 0 && weights_.size() == n && std::memcmp(weights_.data(), weights, n * sizeof(float)) == 0;
  }

  mutable std::shared_mutex mutex_;
  mutable std::vector<float> weights_;
  mutable WinogradKernel kernel_;
};

template <int M>
class WinogradConv {
 public:
  static bool supports(const ConvGeometry& g) { return g.kh == 3 && g.kw == 3 && g.sh == 1 && g.sw == 1; }
  /// Whether forward_pooled can compute a layer with this geometry: the
  /// windows need AVX-512's pooling kernel (maxpool_halves.hpp), and a map of at least 2x2.
  static bool pools(const ConvGeometry& g) {
    return supports(g) && maxpool_halves::pool_halves_supported && g.oh >= 2 && g.ow >= 2;
  }

  /// z = act(conv(x) + b), keeping the transformed kernel, and the input
  /// tiles where backward goes stage by stage; else backward makes them
  /// again from x, which must stay as it is until backward.
  void forward(const ConvGeometry& g, const ConvWeights& w, const Tensor& x, Tensor& z, Activation act);
  /// forward with ReLU, then MaxPool2D's 2x2 windows at stride 2 (an odd
  /// last row or column left out), in the output stage: pooled (N, OH/2,
  /// OW/2, F) gets the values of the two layers run one after the other, bit
  /// for bit, and the winning taps are kept for backward.
  void forward_pooled(const ConvGeometry& g, const ConvWeights& w, const Tensor& x, Tensor& pooled);
  /// infer with ReLU (after `normalize`, when given), then the 2x2 pool:
  /// forward_pooled's values, keeping nothing.
  void infer_pooled(const ConvGeometry& g, const ConvWeights& w, const Tensor& x, Tensor& pooled,
                    const ChannelNormalization& normalize = {}) const;
  /// The same arithmetic without keeping anything; `normalize` (when given)
  /// applied after the bias, before the ReLU (channel_normalization.hpp).
  void infer(const ConvGeometry& g, const ConvWeights& w, const Tensor& x, Tensor& z, Activation act,
             const ChannelNormalization& normalize = {}) const;
  /// dW (3, 3, C, F) and db (F) for dz of the last forward, and dx (N, H, W,
  /// C, sized by the caller) when dx is not null: assigned, or added onto what
  /// dx holds. dz is dy, or, given the output of a fused ReLU, dy where that
  /// output is positive and 0 elsewhere: the mask and the bias sums are taken
  /// while the first pass reads dy, so neither costs a pass of its own.
  /// After forward_pooled, dy and the ReLU output are the pooled map's, and
  /// dz is dy routed to the winning taps (0 under no window).
  void backward(const ConvGeometry& g, const Tensor& dy, const Tensor* relu_output, float* dkernel, float* dbias,
                Tensor* dx, GradientWrite how);

 private:
  WinogradKernel u_;        // transformed kernel of the last forward
  std::vector<gemm::PackedB> packed_ut_;  // each U[xi]^T packed, for dx
  const Tensor* x_ = nullptr;  // the input of the last forward, kept by the caller
  bool pooled_ = false;        // the last forward was forward_pooled
  std::vector<std::int32_t> won_;  // (N, OH/2, OW/2, F) the winning taps of the last forward_pooled
  std::vector<float> v_;    // (T, C) in chunk-major slabs: transformed input tiles of the last forward, where kept
  std::vector<float> dmx_;  // (T, F) in chunk-major slabs: transformed output gradient (stage by stage only)
  std::vector<float> du_;   // a (C, F) matrix per tile position, laid out as U; one such set per group when fused
  std::vector<float> dbias_parts_;  // (chunks, F rounded up to lanes): each chunk's bias gradient
  TransformedKernel inference_u_;  // U for infer
};

// The arithmetic is compiled once, in src/winograd_conv.cpp, for m = 2 and 4:
// its fully unrolled transforms cost each translation unit that instantiated
// them about 45 s of compile time.
extern template class WinogradConv<2>;
extern template class WinogradConv<4>;

}  // namespace loom::conv
