#pragma once
// Direct convolution for a first layer with small patches. A first layer on
// grey or colour images has patches of K <= 80 values (3x3 or 5x5 on colour,
// 7x7 on grey): a product with so short a reduction runs far below peak, and
// im2col spends more time copying 3-float runs than the product multiplies.
// Computed directly instead, in register tiles like the product's: forward,
// 6 output pixels x 2 vectors of filters (12 pixels x 1 vector) whose sums
// stay in registers while all their taps are added, then bias and ReLU as
// they are stored (with AVX-512, 13 pixels x 2 vectors first, in intrinsics:
// src/direct_forward_avx512.hpp, the same bits); dW, 9 taps x 2 vectors
// (12 x 1) summed over all the pixels. Filter counts are a multiple of 8 up to 64, fixed at compile time,
// and rounded up to whole vectors with zeros (24 filters are computed as 32
// and 24 stored); the taps of the common first layers (3x3 grey, 3x3 and 5x5
// colour) are fixed at compile time too.
// Every image goes through the tiles zero-padded (or cropped) so that every
// window lies inside it; forward keeps the padded batch (x itself when no
// window reaches outside it), and dW reads it.
// Backward applies ReLU's mask and sums the bias gradient image by image,
// while that image's dz is in cache, instead of in two passes over the batch;
// with AVX-512 and K <= 27, inside the dW tiles themselves (a compare mask
// that leaves the tile's sums alone where ReLU cut, src/direct_dw_avx512.hpp):
// seed conv1 backward 120 -> 77 us, then 7-13 % more with dy loaded plainly.
// Measured, old and new binaries alternating (loom_bench --threads=2
// --benchmark_filter='^(layer/conv1/|suite/(vgg|odd|photo)/conv1/)'): the
// padded images, fixed taps, 12-pixel tiles and 9-tap dW tiles took forward
// 20-25 % off (vgg conv1 425 -> 344 us) and backward 5-15 %; the rounding
// up of 24 filters a further 15 % (forward) and 20-25 % (backward) off the
// odd model's conv1.
// In training it can also pool for a 2x2 MaxPool2D after it (forward_pooled,
// backward_pooled: the full map is never written; docs/architecture.md).
// It computes no input gradient, so it serves only a layer whose dx has no
// reader (the first layer of a model, see Layer::set_needs_input_gradient).
// Training and inference take the same arithmetic, so forward and infer agree
// bit for bit (infer with a folded BatchNormalization takes the portable tile,
// tested to give the intrinsics tile's values).
//
// Thread safety: infer is const; forward/backward from one thread.
//
// The kernels are compiled once, in src/direct_conv.cpp (one instantiation per
// filter count, too many to compile in every translation unit).


#include <cstdint>
#include <vector>

#include "loom/activation.hpp"
#include "loom/channel_normalization.hpp"
#include "loom/conv/conv_geometry.hpp"
#include "loom/layers/maxpool_halves.hpp"

namespace loom::conv {

class DirectConv {
 public:
  /// Patches of at most this many values are worth convolving directly.
  static constexpr Index kMaxPatch = 80;
  static bool supports(const ConvGeometry& g) {
    return g.patch() <= kMaxPatch && g.f % 8 == 0 && g.f <= 64;
  }

  /// Keeps the input for backward: a padded copy, or a pointer to x when
  /// no window reaches outside the image (x must then outlive backward).
  void forward(const ConvGeometry& g, const ConvWeights& w, const Tensor& x, Tensor& z, Activation act);
  /// `normalize` (when given) applied after the bias, before the ReLU (channel_normalization.hpp).
  void infer(const ConvGeometry& g, const ConvWeights& w, const Tensor& x, Tensor& z, Activation act,
             const ChannelNormalization& normalize = {}) const;

  /// dW (K, F) and db (F) of the last forward, from dz = dL/dz; or, given the
  /// layer's ReLU output y, from dy = dL/dy (dz = dy where y > 0, else 0).
  /// Each image's dz is masked and summed into db while it is in cache, just
  /// before its dW: no pass of its own over the batch. Each chunk of samples
  /// sums into a partial of its own, and the partials are added in chunk order.
  void backward(const ConvGeometry& g, const Tensor& dy, const Tensor* relu_output, float* dkernel, float* dbias);

  /// Whether forward_pooled can compute a layer with this geometry (2x2
  /// windows need AVX-512's pooling kernel, maxpool_halves.hpp, and a map of
  /// at least 2x2).
  static bool pools(const ConvGeometry& g) {
    return supports(g) && maxpool_halves::pool_halves_supported && g.oh >= 2 && g.ow >= 2;
  }
  /// forward with ReLU, then MaxPool2D's 2x2 windows at stride 2 (an odd last
  /// row or column left out), in one pass: pooled (N, OH/2, OW/2, F) gets the
  /// values of the two layers run one after the other, bit for bit, and the
  /// winning taps are kept for backward_pooled. The full map is never
  /// written: each pair of output rows is pooled while it is in cache.
  void forward_pooled(const ConvGeometry& g, const ConvWeights& w, const Tensor& x, Tensor& pooled);
  /// infer with ReLU (after `normalize`, when given), then the 2x2 pool, in
  /// one pass: forward_pooled's values, keeping nothing.
  void infer_pooled(const ConvGeometry& g, const ConvWeights& w, const Tensor& x, Tensor& pooled,
                    const ChannelNormalization& normalize = {}) const;
  /// backward of the last forward_pooled, from dpool = dL/dpooled and the
  /// pooled output: bitwise the dW and db of the pool's backward, then
  /// backward with ReLU's mask, without their passes over the full map.
  void backward_pooled(const ConvGeometry& g, const Tensor& dpool, const Tensor& pooled, float* dkernel,
                       float* dbias);

 private:
  // Output rows [oy0, oy1) of one image whose every window lies inside it
  // (geometry gp), into z ((oy1 - oy0) * OW, F).
  static void compute(const ConvGeometry& gp, const ConvWeights& w, const float* image, Index oy0, Index oy1, float* z,
                      Activation act, const ChannelNormalization& normalize);
  static void pool_rows(const ConvGeometry& g, const ConvWeights& wp, const float* image, std::vector<float>& rows,
                        float* pooled, std::int32_t* won, const ChannelNormalization& normalize = {});
  template <typename Fn>
  static void for_each_padded_image(const ConvGeometry& g, const ConvWeights& w, const Tensor& x, float* kept, Fn&& fn);
  float* keep_input(const ConvGeometry& g, const Tensor& x);

  // One image's gradient for dW's tiles: dy, and ReLU's output to mask it by
  // (null: dy is dz already).
  struct ImageGradient {
    const float* dy;
    const float* relu_output;
    bool streamed;  // dy is a batch's map, not made in a thread's scratch (in cache)
  };
  template <typename ImageOf>
  void backward_images(const ConvGeometry& g, Index n, bool relu, float* dkernel, float* dbias, ImageOf&& image_of);

  // dW (K, F) and db (F) from the chunks' parts.
  void sum_parts(Index k, Index f, Index chunks, float* dkernel, float* dbias) const;

  // The input of the last forward, as dW reads it: padded so that every
  // window lies inside (N, H', W', C), in padded_ when it needed padding,
  // else the caller's x, which it keeps until backward.
  const float* kept_ = nullptr;
  Index kept_batch_ = 0;
  Tensor padded_;
  RowMatrix parts_;     // (chunks * (K + 1), F) each chunk's share of dW, then of db
  RowMatrix masked_;    // (threads * OH * OW, F) each thread's masked dz of one image
  std::vector<std::int32_t> won_;  // (N, OH/2, OW/2, F) the winning taps of the last forward_pooled
};

}  // namespace loom::conv
