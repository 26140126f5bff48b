// Winograd convolution F(m x m, 3 x 3): the arithmetic behind
// include/loom/conv/winograd_conv.hpp (which explains it), compiled once for
// m = 2 and m = 4.
//
// The parts, included here as one translation unit: winograd_tiles.hpp (the
// batch's tiles, chunks and slabs), winograd_tile_io.hpp (moving tiles in and
// out: images, slabs, the output map) and winograd_kernel.hpp (U = G g GT
// and dW = GT dU G). This file: forward's and backward's stages on a chunk's
// tiles, the scratch they share, and how chunks are spread over threads.

#include "loom/conv/winograd_conv.hpp"

#include <algorithm>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "loom/conv/winograd_transforms.hpp"
#include "loom/gemm.hpp"
#include "loom/parallel.hpp"
#include "winograd_kernel.hpp"
#include "winograd_tile_io.hpp"
#include "winograd_tiles.hpp"

namespace loom::conv {
namespace {

template <int M>
struct Winograd {
  using Mat = winograd::Matrices<M>;
  using Tiles = conv::Tiles<M>;
  static constexpr int A = Mat::a;        // input tile side
  static constexpr int XI = Tiles::XI;    // tile positions


  // Where the output stage writes: the map z (N, OH, OW, F), or with `pool`
  // its 2x2 maxima (N, OH/2, OW/2, F), with `won` (when not null) their taps.
  struct Output {
    float* z;
    bool pool = false;
    std::int32_t* won = nullptr;
  };
  static_assert(M % 2 == 0, "a 2x2 pool window must lie inside one output tile");

  // V is kept for backward only where backward goes stage by stage (see
  // gradient_groups); the fused backward makes each chunk's V again from x,
  // which the caller keeps (layer.hpp), while it is in that thread's cache.
  static void forward(WinogradKernel& u_, std::vector<float>& v_, const ConvGeometry& g, const ConvWeights& w,
                      const Tensor& x, Output z, Activation act) {
    const Tiles t(g, x.dimension(0));
    const auto chunks = t.chunks();
    transform<M>(g, w.kernel, u_);
    const bool keep = keeps_tiles(g, chunks);
    if (keep)
      v_.resize(t.buffer_size(chunks, g.c));
    else
      std::vector<float>().swap(v_);  // nothing kept: its memory goes back
    compute(g, t, u_, w.bias, x, z, act, {}, keep ? v_.data() : nullptr);
  }

  static void infer(const TransformedKernel& kept, const ConvGeometry& g, const ConvWeights& w, const Tensor& x,
                    Output z, Activation act, const ChannelNormalization& normalize) {
    const Tiles t(g, x.dimension(0));
    kept.use(
        w.kernel, static_cast<std::size_t>(9 * g.c * g.f),
        [&](const float* kernel, WinogradKernel& u) { transform<M>(g, kernel, u); },
        [&](const WinogradKernel& u) { compute(g, t, u, w.bias, x, z, act, normalize, nullptr); });
  }

  static void backward(const WinogradKernel& u_, std::vector<gemm::PackedB>& packed_ut_, const Tensor& x,
                       const std::vector<float>& v_, std::vector<float>& dmx_, std::vector<float>& du_,
                       std::vector<float>& dbias_parts_, const ConvGeometry& g, const Tensor& dy,
                       const Tensor* relu_output, const std::int32_t* won, float* dkernel, float* dbias, Tensor* dx,
                       GradientWrite how) {
    const Index n = dy.dimension(0);
    const Tiles t(g, n);
    const auto chunks = t.chunks();
    const Index padded_f = (g.f + L - 1) / L * L;
    dbias_parts_.assign(static_cast<std::size_t>(chunks.count() * padded_f), 0.0f);
    // Each U[xi]^T packed for dx, as late as its use allows: large ones stay in cache for dx.
    const auto pack_ut = [&] {
      pack_each<M>(packed_ut_, g.c * g.f, [&](int xi) { return gemm::view(u_matrix(g, u_.u, xi).transpose()); });
    };
    const auto bias_sums = [&](Index c) { return dbias_parts_.data() + c * padded_f; };
    const auto v_of = [&](Index c) { return v_.data() + t.chunk_offset(chunks, c, g.c); };
    const Index groups = gradient_groups(g, chunks);
    if (groups > 0) {
      if (x.size() != n * g.input_size())
        throw UsageError("Winograd backward: the input of the last forward is no longer there (" +
                         std::to_string(x.size()) + " values, expected " + std::to_string(n * g.input_size()) + ")");
      // Fused: each group of chunks, on one thread, takes chunk after chunk
      // through dMx and V made again (in that thread's scratch, where they
      // stay in cache), its share of dU (the group's own dU, summed over its
      // chunks in order) and dx. dx's dV takes V's place in the scratch.
      du_.resize(static_cast<std::size_t>(groups * XI * kernel_slab(g)));
      if (dx) pack_ut();
      parallel_for(groups, true, [&](Index grp) {
        const Index first = group_first(chunks, groups, grp), end = group_first(chunks, groups, grp + 1);
        Index most = 0;
        for (Index c = first; c < end; ++c) most = std::max(most, t.count(chunks, c));
        float* dmx = scratch<kGradientSlot>(static_cast<std::size_t>(XI * Tiles::slab(most, g.f)));
        float* du = du_.data() + grp * XI * kernel_slab(g);
        for (Index c = first; c < end; ++c) {
          output_gradient_tiles(g, t, chunks, c, dy, relu_output, won, dmx, bias_sums(c));
          float* v = scratch<kTileSlot>(static_cast<std::size_t>(XI * Tiles::slab(t.count(chunks, c), g.c)));
          input_tiles(g, t, chunks, c, x, v);
          add_kernel_gradient(g, t.count(chunks, c), v, dmx, du, c > first);
          if (dx) input_gradient(g, t, chunks, c, dmx, packed_ut_, *dx, how);
        }
      });
    } else {
      // Stage by stage over the whole batch: dMx of every chunk; dU one
      // thread per tile position, summing over the chunks in order; dx.
      dmx_.resize(t.buffer_size(chunks, g.f));
      const auto dmx_of = [&](Index c) { return dmx_.data() + t.chunk_offset(chunks, c, g.f); };
      parallel_for(chunks.count(), true,
                   [&](Index c) { output_gradient_tiles(g, t, chunks, c, dy, relu_output, won, dmx_of(c), bias_sums(c)); });
      du_.resize(static_cast<std::size_t>(XI * kernel_slab(g)));
#pragma omp parallel for schedule(static)
      for (int xi = 0; xi < XI; ++xi)
        for (Index c = 0; c < chunks.count(); ++c)
          add_kernel_gradient(g, t.count(chunks, c), v_of(c), dmx_of(c), du_.data(), c > 0, xi, xi + 1);
      if (dx) {
        pack_ut();
        parallel_for(chunks.count(), true,
                     [&](Index c) { input_gradient(g, t, chunks, c, dmx_of(c), packed_ut_, *dx, how); });
      }
    }
    // The chunks' bias sums, added in chunk order; dW = GT dU G, dU the sum of the groups' in order.
    sum_parts_in_order(ConstMatrixMap(dbias_parts_.data(), chunks.count() * padded_f, 1), padded_f, chunks.count(),
                       MatrixMap(dbias, g.f, 1));
    untransform_kernel_gradient<M>(g, du_.data(), std::max<Index>(groups, 1), dkernel);
  }

  // The backward's two ways to dU. Fused (gradient_groups > 0) when the
  // groups' own dU fit in kFusedGradientBytes: each chunk's dMx is then
  // written and read on one thread while in its cache, and no thread reads
  // what another wrote but the groups' dU. On this 2-vCPU host, whose vCPUs
  // are at times far apart (a 450 ns round trip), the stage-by-stage way had
  // each thread read half of V and dMx from the other's cache, and write
  // next step over lines the other still held. Groups are fixed by the shapes
  // (at most kGradientGroups, chunks split evenly), never by the thread
  // count, so dU's sums are the same on any number of threads.
  static constexpr Index kGradientGroups = 8;
  static constexpr std::size_t kFusedGradientBytes = std::size_t{4} << 20;
  static Index gradient_groups(const ConvGeometry& g, const SampleChunks& chunks) {
    const Index groups = std::min(chunks.count(), kGradientGroups);
    const auto bytes = static_cast<std::size_t>(groups * XI * kernel_slab(g)) * sizeof(float);
    return bytes <= kFusedGradientBytes ? groups : 0;
  }
  // Whether forward keeps V for backward: only for the stage-by-stage way.
  static bool keeps_tiles(const ConvGeometry& g, const SampleChunks& chunks) { return gradient_groups(g, chunks) == 0; }
  static Index group_first(const SampleChunks& chunks, Index groups, Index grp) {
    return grp * chunks.count() / groups;
  }

  // Chunk c's dz = dy, masked where a fused ReLU cut (relu_output <= 0),
  // read tile by tile: its bias gradient summed into bias_sums (tile by tile,
  // in lanes of L filters) and dMx = A dZ AT stored into the chunk's slabs
  // (a*a, chunk's tiles, F) at dmx. dz itself is never written. After a
  // pooled forward (`won`), dy and relu_output are the pooled map's, and dz
  // is dy routed to the winning taps (load_routed_tile).
  static void output_gradient_tiles(const ConvGeometry& g, const Tiles& t, const SampleChunks& chunks, Index c,
                                    const Tensor& dy, const Tensor* relu_output, const std::int32_t* won, float* dmx,
                                    float* bias_sums) {
    const Index slab = Tiles::slab(t.count(chunks, c), g.f);
    const Index per_sample = won ? g.pooled_size() : g.output_size();
    alignas(64) float tile[XI * L], out[XI * L];
    for_each_tile(t, chunks, c, [&](Index s, Index ty, Index tx, Index ti) {
      for (Index f0 = 0; f0 < g.f; f0 += L) {
        const Index lanes = std::min<Index>(L, g.f - f0);
        const float* dy_image = dy.data() + s * per_sample;
        const float* y_image = relu_output ? relu_output->data() + s * per_sample : nullptr;
        if (won)
          load_routed_tile<M>(dy_image, y_image, won + s * per_sample, g, ty * M, tx * M, f0, lanes, tile);
        else if (relu_output)
          load_masked_image_tile<M>(dy_image, y_image, g.oh, g.ow, g.f, ty * M, tx * M, f0, lanes, tile);
        else
          load_image_tile<M>(dy_image, g.oh, g.ow, g.f, ty * M, tx * M, f0, lanes, tile);
        add_tile_sums(tile, bias_sums + f0);
        winograd::sandwich<typename Mat::AT, true>(tile, out);
        store_slabs<XI>(out, dmx, slab, ti * g.f + f0, lanes);
      }
    });
  }

  // sums[k] += the tile's M*M values of lane k, one after the other: through
  // a local copy, as bias_sums may alias nothing but the compiler cannot
  // know, which had left these adds scalar, a load and a store each (a fifth
  // of output_gradient_tiles in a profile of vgg's step). The same adds in
  // the same order: the same bits.
  static void add_tile_sums(const float* __restrict tile, float* __restrict sums) {
    alignas(64) float acc[L];
    std::copy_n(sums, L, acc);
    for (int p = 0; p < M * M; ++p)
      for (int k = 0; k < L; ++k) acc[k] += tile[p * L + k];
    std::copy_n(acc, L, sums);
  }

  // du[xi] (C, F) = (or += when `add`) V[xi]^T dMx[xi] of one chunk of tn
  // tiles, for tile positions [xi0, xi1); v and dmx are the chunk's slabs.
  static void add_kernel_gradient(const ConvGeometry& g, Index tn, const float* v, const float* dmx, float* du,
                                  bool add, int xi0 = 0, int xi1 = XI) {
    for (int xi = xi0; xi < xi1; ++xi) {
      const ConstMatrixMap V(v + xi * Tiles::slab(tn, g.c), tn, g.c);
      const ConstMatrixMap dMx(dmx + xi * Tiles::slab(tn, g.f), tn, g.f);
      gemm::multiply(gemm::mutable_view(MatrixMap(du + xi * kernel_slab(g), g.c, g.f)), gemm::view(V.transpose()),
                     gemm::view(dMx), {add});
    }
  }

  // Chunk c's dV = dMx U^T (dmx: the chunk's slabs), then B dV BT added onto
  // the input pixels under each tile of dx (after zeroing the chunk's samples when assigning).
  static void input_gradient(const ConvGeometry& g, const Tiles& t, const SampleChunks& chunks, Index c,
                             const float* dmx, const std::vector<gemm::PackedB>& packed_ut, Tensor& dx,
                             GradientWrite how) {
    const Index tn = t.count(chunks, c), dv_slab = Tiles::slab(tn, g.c), dmx_slab = Tiles::slab(tn, g.f);
    float* dv = scratch<kTileSlot>(static_cast<std::size_t>(XI * dv_slab));  // (a*a, chunk's tiles, C)
    for (int xi = 0; xi < XI; ++xi) {
      const ConstMatrixMap dMx(dmx + xi * dmx_slab, tn, g.f);
      gemm::multiply(gemm::mutable_view(MatrixMap(dv + xi * dv_slab, tn, g.c)), gemm::view(dMx), packed_ut[xi]);
    }
    if (how == GradientWrite::Assign)
      std::fill_n(dx.data() + chunks.first(c) * g.input_size(), chunks.size(c) * g.input_size(), 0.0f);
    alignas(64) float tile[XI * L], out[XI * L];
    for_each_tile(t, chunks, c, [&](Index s, Index ty, Index tx, Index ti) {
      for (Index c0 = 0; c0 < g.c; c0 += L) {
        const Index lanes = std::min<Index>(L, g.c - c0);
        load_slabs<XI>(dv, dv_slab, ti * g.c + c0, lanes, tile);
        winograd::sandwich<typename Mat::BT, true>(tile, out);
        add_image_tile<A>(out, dx.data() + s * g.input_size(), g.h, g.w, g.c, ty * M - g.pad_top,
                          tx * M - g.pad_left, c0, lanes);
      }
    });
  }

  // Per-thread scratch that lives across calls, one buffer per slot: no
  // allocation (and no page faults) in the batch loop once sizes settle, and
  // safe for many threads calling infer at once.
  static constexpr int kTileSlot = 0, kProductSlot = 1, kGradientSlot = 2;
  template <int Slot>
  static float* scratch(std::size_t n) {
    thread_local std::vector<float> buffer;
    if (buffer.size() < n) buffer.resize(n);
    return buffer.data();
  }

  // ---- forward -----------------------------------------------------------------
  // Chunk by chunk: input tiles to V, the a*a products with the transformed
  // kernel u, the output transform with bias and ReLU. Training writes V into
  // keep (the whole batch's, chunk-major, for dU); inference into scratch.
  // Chunks run in parallel, one thread each. A batch of one chunk (one image,
  // as a single-image predict) runs its three stages one after the other,
  // each spread over the threads (transforms by blocks of tiles, products by
  // tile position) when the chunk holds enough work (spreads_one_chunk); the
  // pieces are those one thread computes, so the bits are the same.
  static void compute(const ConvGeometry& g, const Tiles& t, const WinogradKernel& u, const float* bias,
                      const Tensor& x, Output z, Activation act, const ChannelNormalization& normalize,
                      float* keep) {
    const auto chunks = t.chunks();
    const auto buffers = [&](Index c) {
      const Index tn = t.count(chunks, c);
      float* v = keep ? keep + t.chunk_offset(chunks, c, g.c)
                      : scratch<kTileSlot>(static_cast<std::size_t>(XI * Tiles::slab(tn, g.c)));
      return std::pair{v, scratch<kProductSlot>(static_cast<std::size_t>(XI * Tiles::slab(tn, g.f)))};
    };
    if (chunks.count() == 1 && spreads_one_chunk(g, t.count(chunks, 0))) {
      const Index tn = t.count(chunks, 0), blocks = (tn + kTileBlock - 1) / kTileBlock;
      const auto [v, mx] = buffers(0);  // the calling thread's scratch, shared with the team
      const auto range = [&](Index b) { return std::pair{b * kTileBlock, std::min(tn, (b + 1) * kTileBlock)}; };
      parallel_for(blocks, true, [&](Index b) {
        const auto [t0, t1] = range(b);
        input_tiles(g, t, chunks, 0, x, v, t0, t1);
      });
      parallel_for(XI, true, [&](Index xi) { product(g, tn, u, v, mx, static_cast<int>(xi)); });
      parallel_for(blocks, true, [&](Index b) {
        const auto [t0, t1] = range(b);
        output_tiles(g, t, chunks, 0, mx, bias, z, act, normalize, t0, t1);
      });
      return;
    }
    parallel_for(chunks.count(), true, [&](Index c) {
      const auto [v, mx] = buffers(c);
      input_tiles(g, t, chunks, c, x, v);
      for (int xi = 0; xi < XI; ++xi) product(g, t.count(chunks, c), u, v, mx, xi);
      output_tiles(g, t, chunks, c, mx, bias, z, act, normalize);
    });
  }

  // A single chunk is spread over the threads when its products hold at
  // least this many multiply-adds per tile position (tiles x C x F): the wide
  // model's layers at one image (16 tiles of 64 x 128 and more). Below it
  // the barriers cost more than they share: spreading the seed model's
  // single image (9 tiles of 32 x 64) had made its predict slower, 137-156
  // us against 166-218 (loom_bench predict/batch:1, alternating runs).
  static constexpr Index kSpreadChunkWork = Index{1} << 17;
  static constexpr Index kTileBlock = 4;  // tiles per piece of a spread transform
  static bool spreads_one_chunk(const ConvGeometry& g, Index tiles) { return tiles * g.c * g.f >= kSpreadChunkWork; }

  // Mx[xi] = V[xi] U[xi] for one chunk of tn tiles (v and mx: its slabs).
  static void product(const ConvGeometry& g, Index tn, const WinogradKernel& u, const float* v, float* mx, int xi) {
    const Index v_slab = Tiles::slab(tn, g.c), mx_slab = Tiles::slab(tn, g.f);
    const ConstMatrixMap V(v + xi * v_slab, tn, g.c);
    gemm::multiply(gemm::mutable_view(MatrixMap(mx + xi * mx_slab, tn, g.f)), gemm::view(V), u.packed[xi]);
  }

  // Chunk c's output tiles (or its tiles [t0, t1)): AT Mx A, then bias, the
  // map and ReLU, into z's pixels, or pooled into its windows.
  static void output_tiles(const ConvGeometry& g, const Tiles& t, const SampleChunks& chunks, Index c,
                           const float* mx, const float* bias, Output z, Activation act,
                           const ChannelNormalization& normalize, Index t0 = 0, Index t1 = -1) {
    const Index mx_slab = Tiles::slab(t.count(chunks, c), g.f);
    const Index per_sample = z.pool ? g.pooled_size() : g.output_size();
    alignas(64) float tile[XI * L], out[XI * L];
    for_each_tile(
        t, chunks, c,
        [&](Index s, Index ty, Index tx, Index ti) {
          for (Index f0 = 0; f0 < g.f; f0 += L) {
            const Index lanes = std::min<Index>(L, g.f - f0);
            load_slabs<XI>(mx, mx_slab, ti * g.f + f0, lanes, tile);
            winograd::sandwich<typename Mat::AT>(tile, out);
            finish_output_tile(out, bias + f0, normalize.from(f0), act, lanes);
            if (z.pool)
              pool_output_tile<M>(out, z.z + s * per_sample, z.won ? z.won + s * per_sample : nullptr, g, ty * M,
                                  tx * M, f0, lanes);
            else
              store_output_tile<M>(out, z.z + s * per_sample, g, ty * M, tx * M, f0, lanes);
          }
        },
        t0, t1);
  }

  // Chunk c's input tiles transformed, BT d B, into its slabs of V (a*a, its
  // tiles, C) at v: forward's first stage, and the fused backward's V.
  static void input_tiles(const ConvGeometry& g, const Tiles& t, const SampleChunks& chunks, Index c, const Tensor& x,
                          float* v, Index t0 = 0, Index t1 = -1) {
    const Index v_slab = Tiles::slab(t.count(chunks, c), g.c);
    alignas(64) float tile[XI * L], out[XI * L];
    for_each_tile(
        t, chunks, c,
        [&](Index s, Index ty, Index tx, Index ti) {
          for (Index c0 = 0; c0 < g.c; c0 += L) {
            const Index lanes = std::min<Index>(L, g.c - c0);
            load_image_tile<A>(x.data() + s * g.input_size(), g.h, g.w, g.c, ty * M - g.pad_top, tx * M - g.pad_left,
                               c0, lanes, tile);
            winograd::sandwich<typename Mat::BT>(tile, out);
            store_slabs<XI>(out, v, v_slab, ti * g.c + c0, lanes);
          }
        },
        t0, t1);
  }

  // The m x m output tile, in place: plus bias (then `normalize`'s map of
  // lanes from f0 on, when given), through ReLU.
  static void finish_output_tile(float* tile, const float* bias, const ChannelNormalization& normalize,
                                 Activation act, Index lanes) {
    using Lanes = Eigen::Array<float, L, 1>;
    Lanes b;
    copy_lanes(bias, b.data(), lanes);
    // A partial vector of filters reads its map from zero-padded copies, so
    // that the lanes past the filters read nothing past the arrays.
    alignas(64) float center[L], inv_std[L], gamma[L], beta[L];
    ChannelNormalization lane_map = normalize;
    if (normalize && lanes < L) {
      copy_lanes(normalize.center, center, lanes), copy_lanes(normalize.inv_std, inv_std, lanes);
      copy_lanes(normalize.gamma, gamma, lanes), copy_lanes(normalize.beta, beta, lanes);
      lane_map = {center, inv_std, gamma, beta};
    }
    const bool relu = act == Activation::ReLU;
    for (int p = 0; p < M * M; ++p) {
      Lanes v = Eigen::Map<const Lanes>(tile + p * L) + b;
      if (normalize)
        for (int k = 0; k < L; ++k) v[k] = lane_map(v[k], k);
      if (relu) v = v.max(0.0f);
      Eigen::Map<Lanes>(tile + p * L) = v;
    }
  }

};

}  // namespace

template <int M>
void WinogradConv<M>::forward(const ConvGeometry& g, const ConvWeights& w, const Tensor& x, Tensor& z,
                              Activation act) {
  x_ = &x;
  pooled_ = false;
  std::vector<std::int32_t>().swap(won_);
  Winograd<M>::forward(u_, v_, g, w, x, {z.data()}, act);
}

template <int M>
void WinogradConv<M>::forward_pooled(const ConvGeometry& g, const ConvWeights& w, const Tensor& x, Tensor& pooled) {
  if (!pools(g)) throw UsageError("WinogradConv::forward_pooled: this layer's output cannot be pooled here");
  const Index n = x.dimension(0);
  pooled.resize(n, g.oh / 2, g.ow / 2, g.f);
  won_.resize(static_cast<std::size_t>(pooled.size()));
  x_ = &x;
  pooled_ = true;
  Winograd<M>::forward(u_, v_, g, w, x, {pooled.data(), true, won_.data()}, Activation::ReLU);
}

template <int M>
void WinogradConv<M>::infer(const ConvGeometry& g, const ConvWeights& w, const Tensor& x, Tensor& z,
                            Activation act, const ChannelNormalization& normalize) const {
  Winograd<M>::infer(inference_u_, g, w, x, {z.data()}, act, normalize);
}

template <int M>
void WinogradConv<M>::infer_pooled(const ConvGeometry& g, const ConvWeights& w, const Tensor& x, Tensor& pooled,
                                   const ChannelNormalization& normalize) const {
  if (!pools(g)) throw UsageError("WinogradConv::infer_pooled: this layer's output cannot be pooled here");
  pooled.resize(x.dimension(0), g.oh / 2, g.ow / 2, g.f);
  Winograd<M>::infer(inference_u_, g, w, x, {pooled.data(), true}, Activation::ReLU, normalize);
}

template <int M>
void WinogradConv<M>::backward(const ConvGeometry& g, const Tensor& dy, const Tensor* relu_output, float* dkernel,
                               float* dbias, Tensor* dx, GradientWrite how) {
  if (!x_) throw UsageError("WinogradConv::backward before forward");
  if (pooled_ && dy.size() != static_cast<Index>(won_.size()))
    throw UsageError("WinogradConv::backward: dy holds " + std::to_string(dy.size()) +
                     " values, the last forward's pooled output " + std::to_string(won_.size()));
  Winograd<M>::backward(u_, packed_ut_, *x_, v_, dmx_, du_, dbias_parts_, g, dy, relu_output,
                        pooled_ ? won_.data() : nullptr, dkernel, dbias, dx, how);
}

template class WinogradConv<2>;
template class WinogradConv<4>;

}  // namespace loom::conv
