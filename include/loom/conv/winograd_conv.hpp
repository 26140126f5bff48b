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
// Backward is the adjoint of each stage, and reuses V and U from forward:
//   dMx[xi][t] = A dY AT      the output gradient tile, transformed once
//   dU[xi]     = V[xi]^T dMx[xi]     (C, F): one product over all the batch's
//                                    tiles per xi, so no partial sums per
//                                    thread and a long reduction for the GEMM
//   dW         = GT dU G     per (c, f)
//   dV[xi]     = dMx[xi] U[xi]^T     (T, C), then B dV BT added onto the
//                                    input pixels under each tile: dx
//
// Work is cut into chunks of whole samples (about 128 tiles) that run in
// parallel, one thread each: the transforms and products of a chunk stay in
// cache, and dx tiles that overlap (neighbouring input tiles share two rows)
// are always added by the same thread. dU's products run in parallel over xi.
// Chunks and the order of every sum are fixed by the shapes, so results do not
// depend on the thread count; forward and infer share the same code and agree
// bit for bit. Winograd's results differ from im2col's by rounding (a few
// 1e-6 relative for m = 4; tested in test_conv_engine.cpp).
//
// Thread safety: infer is const (scratch of its own); forward/backward from one thread.

#include <algorithm>
#include <vector>

#include "loom/activation.hpp"
#include "loom/conv/conv_geometry.hpp"
#include "loom/conv/winograd_transforms.hpp"

namespace loom::conv {

template <int M>
class WinogradConv {
  using Mat = winograd::Matrices<M>;
  static constexpr int A = Mat::a;        // input tile side
  static constexpr int XI = A * A;        // tile positions
  static constexpr int L = winograd::kLanes;

 public:
  static bool supports(const ConvGeometry& g) { return g.kh == 3 && g.kw == 3 && g.sh == 1 && g.sw == 1; }

  void forward(const ConvGeometry& g, const ConvWeights& w, const Tensor& x, Tensor& z, Activation act) {
    const Tiles t(g, x.dimension(0));
    transform_kernel(g, w.kernel, u_);
    v_.resize(static_cast<std::size_t>(XI * t.total * g.c));
    compute(g, t, w.bias, x, z, act, v_.data());
  }

  void infer(const ConvGeometry& g, const ConvWeights& w, const Tensor& x, Tensor& z, Activation act) const {
    const Tiles t(g, x.dimension(0));
    std::vector<float> u;
    transform_kernel(g, w.kernel, u);
    compute(g, t, w.bias, x, z, act, nullptr, &u);
  }

  /// dW (3, 3, C, F) for dz of the last forward, and dx (N, H, W, C) when dx is not null.
  void backward(const ConvGeometry& g, const Tensor& dz, float* dkernel, Tensor* dx) {
    const Index n = dz.dimension(0);
    const Tiles t(g, n);
    const SampleChunks chunks(n, t.chunk_samples());
    dmx_.resize(static_cast<std::size_t>(XI * t.total * g.f));
    // dMx = A dY AT, tile by tile.
#pragma omp parallel for schedule(static) if (chunks.count() > 1)
    for (Index c = 0; c < chunks.count(); ++c) {
      alignas(64) float tile[A * A * L], out[XI * L];
      for (Index s = chunks.first(c); s < chunks.end(c); ++s)
        for (Index ty = 0; ty < t.rows; ++ty)
          for (Index tx = 0; tx < t.cols; ++tx) {
            const Index ti = t.index(s, ty, tx);
            for (Index f0 = 0; f0 < g.f; f0 += L) {
              const Index lanes = std::min<Index>(L, g.f - f0);
              load_image_tile<M>(dz.data() + s * g.output_size(), g.oh, g.ow, g.f, ty * M, tx * M, f0, lanes, tile);
              winograd::sandwich<typename Mat::AT, true>(tile, out);
              store_slabs(out, dmx_.data(), t.total * g.f, ti * g.f + f0, lanes);
            }
          }
    }
    // dU[xi] = V[xi]^T dMx[xi], one product per tile position, then dW = GT dU G.
    du_.resize(static_cast<std::size_t>(XI * g.c * g.f));
#pragma omp parallel for schedule(static)
    for (int xi = 0; xi < XI; ++xi) {
      const ConstMatrixMap V(v_.data() + xi * t.total * g.c, t.total, g.c);
      const ConstMatrixMap dMx(dmx_.data() + xi * t.total * g.f, t.total, g.f);
      MatrixMap(du_.data() + xi * g.c * g.f, g.c, g.f).noalias() = V.transpose() * dMx;
    }
    untransform_kernel_gradient(g, du_, dkernel);
    if (!dx) return;
    // dV = dMx U^T per chunk, then B dV BT onto the input pixels.
#pragma omp parallel for schedule(static) if (chunks.count() > 1)
    for (Index c = 0; c < chunks.count(); ++c) {
      const Index t0 = t.index(chunks.first(c), 0, 0), tn = chunks.size(c) * t.per_sample;
      std::vector<float> dv(static_cast<std::size_t>(XI * tn * g.c));
      for (int xi = 0; xi < XI; ++xi) {
        const ConstMatrixMap dMx(dmx_.data() + (xi * t.total + t0) * g.f, tn, g.f);
        const ConstMatrixMap U(u_.data() + xi * g.c * g.f, g.c, g.f);
        MatrixMap(dv.data() + xi * tn * g.c, tn, g.c).noalias() = dMx * U.transpose();
      }
      std::fill_n(dx->data() + chunks.first(c) * g.input_size(), chunks.size(c) * g.input_size(), 0.0f);
      alignas(64) float tile[XI * L], out[XI * L];
      for (Index s = chunks.first(c); s < chunks.end(c); ++s)
        for (Index ty = 0; ty < t.rows; ++ty)
          for (Index tx = 0; tx < t.cols; ++tx) {
            const Index ti = t.index(s, ty, tx) - t0;
            for (Index c0 = 0; c0 < g.c; c0 += L) {
              const Index lanes = std::min<Index>(L, g.c - c0);
              load_slabs(dv.data(), tn * g.c, ti * g.c + c0, lanes, tile);
              winograd::sandwich<typename Mat::BT, true>(tile, out);
              add_image_tile<A>(out, dx->data() + s * g.input_size(), g.h, g.w, g.c, ty * M - g.pad_top,
                                tx * M - g.pad_left, c0, lanes);
            }
          }
    }
  }

 private:
  // The batch's tiles: rows x cols per sample, numbered sample by sample.
  struct Tiles {
    Index rows, cols, per_sample, total;
    Tiles(const ConvGeometry& g, Index n)
        : rows((g.oh + M - 1) / M), cols((g.ow + M - 1) / M), per_sample(rows * cols), total(n * per_sample) {}
    Index index(Index s, Index ty, Index tx) const { return (s * rows + ty) * cols + tx; }
    // About 128 tiles per chunk: a chunk's V and Mx (a*a * 128 * (C + F) floats) stay in L2 for C + F up to 64.
    Index chunk_samples() const { return std::max<Index>(1, 128 / per_sample); }
  };

  // ---- moving tiles in and out -------------------------------------------------
  // Tile (R x R vectors of L lanes) at (y0, x0) of an (H, W, C) image, lanes
  // [c0, c0 + lanes) of each pixel; zeros outside the image and past `lanes`.
  template <int R>
  static void load_image_tile(const float* image, Index h, Index w, Index ch, Index y0, Index x0, Index c0,
                              Index lanes, float* tile) {
    std::fill_n(tile, R * R * L, 0.0f);
    for (int i = 0; i < R; ++i) {
      const Index y = y0 + i;
      if (y < 0 || y >= h) continue;
      for (int j = 0; j < R; ++j) {
        const Index x = x0 + j;
        if (x < 0 || x >= w) continue;
        std::copy_n(image + (y * w + x) * ch + c0, lanes, tile + (i * R + j) * L);
      }
    }
  }
  // Adds a tile back onto the image pixels it covers (those inside it).
  template <int R>
  static void add_image_tile(const float* tile, float* image, Index h, Index w, Index ch, Index y0, Index x0,
                             Index c0, Index lanes) {
    for (int i = 0; i < R; ++i) {
      const Index y = y0 + i;
      if (y < 0 || y >= h) continue;
      for (int j = 0; j < R; ++j) {
        const Index x = x0 + j;
        if (x < 0 || x >= w) continue;
        float* px = image + (y * w + x) * ch + c0;
        const float* tv = tile + (i * R + j) * L;
        for (Index k = 0; k < lanes; ++k) px[k] += tv[k];
      }
    }
  }
  // The a*a vectors of one tile in a (a*a, rows, cols) buffer: slab xi starts
  // at xi * slab, the tile's lanes at `at` within it.
  static void load_slabs(const float* buf, Index slab, Index at, Index lanes, float* tile) {
    for (int xi = 0; xi < XI; ++xi) {
      std::copy_n(buf + xi * slab + at, lanes, tile + xi * L);
      std::fill(tile + xi * L + lanes, tile + (xi + 1) * L, 0.0f);
    }
  }
  static void store_slabs(const float* tile, float* buf, Index slab, Index at, Index lanes) {
    for (int xi = 0; xi < XI; ++xi) std::copy_n(tile + xi * L, lanes, buf + xi * slab + at);
  }

  // ---- the kernel --------------------------------------------------------------
  // u (a*a, C, F) = G g GT for every (c, f), F lanes at a time.
  static void transform_kernel(const ConvGeometry& g, const float* kernel, std::vector<float>& u) {
    u.resize(static_cast<std::size_t>(XI * g.c * g.f));
#pragma omp parallel for schedule(static) if (g.c * g.f >= (1 << 14))
    for (Index c = 0; c < g.c; ++c) {
      alignas(64) float tile[9 * L], out[XI * L];
      for (Index f0 = 0; f0 < g.f; f0 += L) {
        const Index lanes = std::min<Index>(L, g.f - f0);
        std::fill_n(tile, 9 * L, 0.0f);
        for (int tap = 0; tap < 9; ++tap) std::copy_n(kernel + (tap * g.c + c) * g.f + f0, lanes, tile + tap * L);
        winograd::sandwich<typename Mat::G>(tile, out);
        store_slabs(out, u.data(), g.c * g.f, c * g.f + f0, lanes);
      }
    }
  }
  // dW (3, 3, C, F) = GT dU G for every (c, f).
  static void untransform_kernel_gradient(const ConvGeometry& g, const std::vector<float>& du, float* dkernel) {
#pragma omp parallel for schedule(static) if (g.c * g.f >= (1 << 14))
    for (Index c = 0; c < g.c; ++c) {
      alignas(64) float tile[XI * L], out[9 * L];
      for (Index f0 = 0; f0 < g.f; f0 += L) {
        const Index lanes = std::min<Index>(L, g.f - f0);
        load_slabs(du.data(), g.c * g.f, c * g.f + f0, lanes, tile);
        winograd::sandwich<typename Mat::G, true>(tile, out);
        for (int tap = 0; tap < 9; ++tap) std::copy_n(out + tap * L, lanes, dkernel + (tap * g.c + c) * g.f + f0);
      }
    }
  }

  // ---- forward -----------------------------------------------------------------
  // Chunk by chunk: input tiles to V, the a*a products, the output transform
  // with bias and ReLU. Training writes V into keep (the whole batch's, for
  // dU); inference into a chunk-sized scratch. u is the transformed kernel
  // (u_ in training).
  void compute(const ConvGeometry& g, const Tiles& t, const float* bias, const Tensor& x, Tensor& z, Activation act,
               float* keep, const std::vector<float>* u = nullptr) const {
    const std::vector<float>& uk = u ? *u : u_;
    const SampleChunks chunks(x.dimension(0), t.chunk_samples());
#pragma omp parallel if (chunks.count() > 1)
    {
      std::vector<float> scratch_v, mx;
      alignas(64) float tile[XI * L], out[XI * L];
#pragma omp for schedule(static)
      for (Index c = 0; c < chunks.count(); ++c) {
        const Index t0 = t.index(chunks.first(c), 0, 0), tn = chunks.size(c) * t.per_sample;
        // V's slabs: the whole batch's (slab of t.total rows) or this chunk's.
        float* v = keep ? keep + t0 * g.c : (scratch_v.resize(XI * tn * g.c), scratch_v.data());
        const Index v_slab = (keep ? t.total : tn) * g.c;
        for (Index s = chunks.first(c); s < chunks.end(c); ++s)
          for (Index ty = 0; ty < t.rows; ++ty)
            for (Index tx = 0; tx < t.cols; ++tx) {
              const Index ti = t.index(s, ty, tx) - t0;
              for (Index c0 = 0; c0 < g.c; c0 += L) {
                const Index lanes = std::min<Index>(L, g.c - c0);
                load_image_tile<A>(x.data() + s * g.input_size(), g.h, g.w, g.c, ty * M - g.pad_top,
                                   tx * M - g.pad_left, c0, lanes, tile);
                winograd::sandwich<typename Mat::BT>(tile, out);
                store_slabs(out, v, v_slab, ti * g.c + c0, lanes);
              }
            }
        mx.resize(static_cast<std::size_t>(XI * tn * g.f));
        for (int xi = 0; xi < XI; ++xi) {
          const ConstMatrixMap V(v + xi * v_slab, tn, g.c);
          const ConstMatrixMap U(uk.data() + xi * g.c * g.f, g.c, g.f);
          MatrixMap(mx.data() + xi * tn * g.f, tn, g.f).noalias() = V * U;
        }
        for (Index s = chunks.first(c); s < chunks.end(c); ++s)
          for (Index ty = 0; ty < t.rows; ++ty)
            for (Index tx = 0; tx < t.cols; ++tx) {
              const Index ti = t.index(s, ty, tx) - t0;
              for (Index f0 = 0; f0 < g.f; f0 += L) {
                const Index lanes = std::min<Index>(L, g.f - f0);
                load_slabs(mx.data(), tn * g.f, ti * g.f + f0, lanes, tile);
                winograd::sandwich<typename Mat::AT>(tile, out);
                store_output_tile(out, bias + f0, act, z.data() + s * g.output_size(), g, ty * M, tx * M, f0, lanes);
              }
            }
      }
    }
  }

  // The m x m output tile plus bias, through ReLU, into the pixels inside the output.
  static void store_output_tile(const float* tile, const float* bias, Activation act, float* image,
                                const ConvGeometry& g, Index y0, Index x0, Index f0, Index lanes) {
    for (int i = 0; i < M && y0 + i < g.oh; ++i)
      for (int j = 0; j < M && x0 + j < g.ow; ++j) {
        float* px = image + ((y0 + i) * g.ow + x0 + j) * g.f + f0;
        const float* tv = tile + (i * M + j) * L;
        for (Index k = 0; k < lanes; ++k) {
          const float v = tv[k] + bias[k];
          px[k] = act == Activation::ReLU && v < 0.0f ? 0.0f : v;
        }
      }
  }

  std::vector<float> u_;    // (a*a, C, F) transformed kernel of the last forward
  std::vector<float> v_;    // (a*a, T, C) transformed input tiles of the last forward
  std::vector<float> dmx_;  // (a*a, T, F) transformed output gradient
  std::vector<float> du_;   // (a*a, C, F)
};

}  // namespace loom::conv
