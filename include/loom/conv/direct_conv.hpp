#pragma once
// Direct convolution for a first layer with small patches. A first layer on
// grey or colour images has patches of K <= 32 values: a product with so short
// a reduction runs far below peak, and im2col spends more time copying 3-float
// runs than the product multiplies. Computed directly instead, in register
// tiles like the product's: forward, 6 output pixels x 16 filters whose sums
// stay in registers while all their taps are added, then bias and ReLU as they
// are stored; dW, 6 taps x 16 filters summed over all the pixels (F fixed at
// compile time: a multiple of 8 up to 64). At the seed model's conv1, batch 32
// (loom_bench --threads=2 layer/conv1), this took forward from 492 to 215 us
// and backward from 376 to 304 us (of which the ReLU mask and the bias
// gradient, outside this file, are about 40 %) over one pixel at a time.
// It computes no input gradient, so it serves only a layer whose dx has no
// reader (the first layer of a model, see Layer::set_needs_input_gradient).
// Training and inference take the same code, so forward and infer agree bit for bit.
//
// Thread safety: infer is const; forward/backward from one thread.
//
// The kernels are compiled once, in src/direct_conv.cpp (one instantiation per
// filter count, too many to compile in every translation unit).


#include "loom/activation.hpp"
#include "loom/conv/conv_geometry.hpp"

namespace loom::conv {

class DirectConv {
 public:
  /// Patches of at most this many values are worth convolving directly.
  static constexpr Index kMaxPatch = 32;
  static bool supports(const ConvGeometry& g) {
    return g.patch() <= kMaxPatch && g.f % 8 == 0 && g.f <= 64;
  }

  void forward(const ConvGeometry& g, const ConvWeights& w, const Tensor& x, Tensor& z, Activation act) {
    x_ = x;  // dW reads the input in place
    infer(g, w, x, z, act);
  }

  void infer(const ConvGeometry& g, const ConvWeights& w, const Tensor& x, Tensor& z, Activation act) const;

  /// dW (K, F) for dz of the last forward: each chunk into a partial of its
  /// own, summed in chunk order.
  void backward(const ConvGeometry& g, const Tensor& dz, float* dkernel);

 private:
  Tensor x_;            // (N, H, W, C) input of the last forward
  RowMatrix dw_parts_;  // (chunks * K, F) each chunk's share of dW
};

}  // namespace loom::conv
