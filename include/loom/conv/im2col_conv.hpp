#pragma once
// Convolution as im2col followed by a matrix product: the general algorithm,
// for any kernel, stride and padding, and the reference the others are tested
// against. NHWC makes the taps along a kernel row one contiguous run of KW*C
// floats; the patch matrix (P, K) times the kernel (K, F) is the output in NHWC
// directly. The batch is cut into chunks of whole samples (about 512 patch
// rows each, evened out by SampleChunks::balanced); chunks run in parallel,
// one thread each, with bias and ReLU in the product's epilogue. The product
// reads the patches in place through a table of pointers (gather: each tap's
// C channels are one run of the image), so the patch matrix is not written
// out, except where training keeps it (below) or C is too small for runs to
// pay (reads_in_place). A 1x1 layer of stride 1 has the input for its patch
// matrix (identity_patches): nothing is copied in either pass. Training keeps
// the patches for backward only where they are smaller than the input (a
// strided 1x1 layer); elsewhere backward reads each chunk's patches through
// the row table again where forward did (weight_gradient_reads_in_place),
// or makes them again, from the input, which the caller keeps until
// backward (layer.hpp): for a 3x3 kernel of stride 2 the patches are 2.25
// times the input, and writing them all out in forward to read them back in
// backward was slower than making them twice in cache (docs/architecture.md
// has the measurements).
//
//   P = N*OH*OW output pixels, K = KH*KW*C
//   col    (P, K)   row p holds the input patch under output pixel p, in
//                   (kh, kw, c) order, zeros where padded
//   z      (P, F)   = col W + b
// Backward, for dZ = dL/dZ (P, F), a chunk at a time, its col read again:
//   dW   = col^T dZ   (K, F)   each chunk into a partial of its own, summed in chunk order
//   dx   = dZ W^T summed back onto the pixels, a chunk at a time: where the
//          product reads dZ in place (PhasedInputGradient::worth_it), one
//          product per phase of the stride writes dx (phased_input_gradient.hpp);
//          else dcol = dZ W^T (P, K), and col2im adds each patch row back onto
//          the input pixels it came from: dx (N, H, W, C)
//
// Thread safety: infer is const (scratch of its own); forward/backward from one thread.

#include <algorithm>
#include <vector>

#include "loom/activation.hpp"
#include "loom/channel_normalization.hpp"
#include "loom/conv/conv_geometry.hpp"
#include "loom/conv/phased_input_gradient.hpp"
#include "loom/elementwise.hpp"
#include "loom/gemm.hpp"
#include "loom/parallel.hpp"

namespace loom::conv {

class Im2colConv {
 public:
  /// z = act(conv(x) + b), keeping the patches (keeps_patches) or else x
  /// itself, which must then stay as it is until backward.
  /// `after` (when given) runs on each chunk's samples once its output is written.
  void forward(const ConvGeometry& g, const ConvWeights& w, const Tensor& x, Tensor& z, Activation act,
               const SampleHook* after = nullptr) {
    x_ = &x;
    RowMatrix* keep = keeps_patches(g) ? &col_ : nullptr;
    if (keep) keep->resize(x.dimension(0) * g.pixels(), g.patch());
    compute(g, w, x, z, keep, act, {}, after);
  }
  /// The same arithmetic without keeping anything; `normalize` (when given)
  /// applied after the bias, before the ReLU (channel_normalization.hpp).
  void infer(const ConvGeometry& g, const ConvWeights& w, const Tensor& x, Tensor& z, Activation act,
             const ChannelNormalization& normalize = {}) const {
    compute(g, w, x, z, nullptr, act, normalize, nullptr);
  }

  /// Whether the input is its own patch matrix: a 1x1 kernel of stride 1
  /// without padding (a pooled projection's convolution), whose patch rows
  /// are the input's pixels. Nothing is copied then: forward reads x as the
  /// other layers' patches are read, backward multiplies x for dW and writes
  /// dx from its product, with no patch gradients and no col2im.
  static bool identity_patches(const ConvGeometry& g) {
    return g.kh == 1 && g.kw == 1 && g.sh == 1 && g.sw == 1 && g.pad_top == 0 && g.pad_left == 0 && g.oh == g.h &&
           g.ow == g.w;
  }

  /// Whether training keeps the patch matrix: only when it is smaller than
  /// the input or the same size but not the input itself.
  static bool keeps_patches(const ConvGeometry& g) {
    return !identity_patches(g) && g.pixels() * g.patch() <= g.input_size();
  }

  /// dW (K, F) for dz of the last forward, and dx (N, H, W, C, sized by the
  /// caller) when dx is not null: assigned, or added onto what dx holds.
  /// One parallel pass over chunks: each adds its share of dW into a partial of
  /// its own and writes its samples' dx; partials are summed in chunk order.
  /// `after` (when given) runs on each chunk's samples once their dx is written.
  void backward(const ConvGeometry& g, const ConvWeights& w, const Tensor& dz, float* dkernel, Tensor* dx,
                GradientWrite how, const SampleHook* after = nullptr) {
    const Index n = dz.dimension(0), k = g.patch(), f = g.f;
    const auto chunks = SampleChunks::balanced(n, chunk_samples(g));
    const ConstMatrixMap dZ(dz.data(), n * g.pixels(), f);
    const ConstMatrixMap W(w.kernel, k, f);
    dw_parts_.resize(chunks.count() * k, f);
    const bool phased = dx && !identity_patches(g) && PhasedInputGradient::worth_it(g);
    if (phased) phases_.prepare(g, w.kernel);
    struct Scratch {
      RowMatrix col, dcol;
    };
    parallel_for_with<Scratch>(chunks.count(), true, [&](Index c, Scratch& scratch) {
      const Index s0 = chunks.first(c), r0 = s0 * g.pixels(), rows = chunks.size(c) * g.pixels();
      const auto dZc = dZ.middleRows(r0, rows);
      auto dw_part = dw_parts_.middleRows(c * k, k);
      if (weight_gradient_reads_in_place(g)) {
        const PatchTable& t = gather_samples(g, x_->data(), s0, chunks.end(c));
        gemm::multiply_transposed(gemm::mutable_view(dw_part), {t.table.data(), rows, g.kh * g.kw, g.c},
                                  gemm::view(dZc));
      } else {
        const float* col;  // the chunk's patches: the input itself, kept, or made again as forward made them
        if (identity_patches(g)) {
          col = x_->data() + s0 * g.input_size();
        } else if (keeps_patches(g)) {
          col = col_.data() + r0 * k;
        } else {
          scratch.col.resize(rows, k);
          im2col_samples(g, x_->data(), s0, chunks.end(c), scratch.col.data());
          col = scratch.col.data();
        }
        gemm::multiply(gemm::mutable_view(dw_part), gemm::view(ConstMatrixMap(col, rows, k).transpose()),
                       gemm::view(dZc));
      }
      [&] {  // the chunk's dx
        if (!dx) return;
        if (identity_patches(g)) {  // the patch gradients are dx's rows: written (or added) by the product
          gemm::multiply(gemm::mutable_view(MatrixMap(dx->data() + s0 * g.input_size(), rows, k)), gemm::view(dZc),
                         gemm::view(W.transpose()), {how == GradientWrite::Add});
          return;
        }
        if (phased) return phases_.write_chunk(g, dz.data(), s0, chunks.end(c), dx->data(), how == GradientWrite::Add);
        RowMatrix& dcol = scratch.dcol;  // the chunk's patch gradients, added back onto dx while in cache
        dcol.resize(rows, k);
        gemm::multiply(gemm::mutable_view(dcol), gemm::view(dZc), gemm::view(W.transpose()));
        if (how == GradientWrite::Assign)
          std::fill_n(dx->data() + s0 * g.input_size(), chunks.size(c) * g.input_size(), 0.0f);
        for (Index s = s0; s < chunks.end(c); ++s)
          col2im(g, dcol.data() + (s - s0) * g.pixels() * k, dx->data() + s * g.input_size());
      }();
      if (after) (*after)(s0, chunks.end(c));
    });
    sum_parts_in_order(dw_parts_, k, chunks.count(), MatrixMap(dkernel, k, f));
  }

  /// Samples per chunk of work: enough patch rows for an efficient product,
  /// few enough that a chunk's patches are still in cache for the product
  /// right after im2col wrote them.
  static Index chunk_samples(const ConvGeometry& g) { return std::max<Index>(1, 512 / g.pixels()); }

  // ---- im2col ----------------------------------------------------------------
  // Visits the patches of one sample's output pixels as runs along the
  // kernel's width: for each (output pixel, ky), the taps kx whose input lies
  // inside the image are one contiguous run of (kx_end - kx_begin) * C floats
  // in x (NHWC) and in the patch row alike; taps in the padding are runs with
  // pixel = -1. f(offset in the sample's patch rows, offset in the sample's
  // image or -1, length). One loop nest serves im2col and col2im, so their
  // index arithmetic cannot drift apart.
  template <typename Fn>
  static void for_each_run(const ConvGeometry& g, Fn&& fn) {
    const Index k = g.patch();
    for (Index oy = 0; oy < g.oh; ++oy)
      for (Index ox = 0; ox < g.ow; ++ox) {
        const Index row = (oy * g.ow + ox) * k;
        const Index ix0 = ox * g.sw - g.pad_left;  // input x under kx = 0
        const Index kx_begin = std::max<Index>(0, -ix0), kx_end = std::min<Index>(g.kw, g.w - ix0);
        for (Index ky = 0; ky < g.kh; ++ky) {
          const Index iy = oy * g.sh + ky - g.pad_top;
          const Index tap = row + ky * g.kw * g.c;
          if (iy < 0 || iy >= g.h || kx_begin >= kx_end) {
            fn(tap, Index{-1}, g.kw * g.c);
            continue;
          }
          if (kx_begin > 0) fn(tap, Index{-1}, kx_begin * g.c);
          fn(tap + kx_begin * g.c, (iy * g.w + ix0 + kx_begin) * g.c, (kx_end - kx_begin) * g.c);
          if (kx_end < g.kw) fn(tap + kx_end * g.c, Index{-1}, (g.kw - kx_end) * g.c);
        }
      }
  }

  /// One sample's image (H, W, C) to its patch rows (OH * OW, K). Runs are
  /// short (KW * C floats: 3 in a first layer), so Eigen maps copy them inline
  /// rather than through memcpy calls.
  static void im2col(const ConvGeometry& g, const float* image, float* patches) {
    for_each_run(g, [&](Index tap, Index pixel, Index len) {
      if (pixel < 0)
        VectorMap(patches + tap, len).setZero();
      else
        VectorMap(patches + tap, len) = ConstVectorMap(image + pixel, len);
    });
  }

  /// Samples [s0, s1) of the batch x to their patch rows, one after the other from `patches`.
  static void im2col_samples(const ConvGeometry& g, const float* x, Index s0, Index s1, float* patches) {
    for (Index s = s0; s < s1; ++s) im2col(g, x + s * g.input_size(), patches + (s - s0) * g.pixels() * g.patch());
  }

  /// Adds one sample's patch-row gradients (OH * OW, K) back onto its image gradient (H, W, C).
  static void col2im(const ConvGeometry& g, const float* dpatches, float* dimage) {
    for_each_run(g, [&](Index tap, Index pixel, Index len) {
      if (pixel >= 0) VectorMap(dimage + pixel, len) += ConstVectorMap(dpatches + tap, len);
    });
  }

  // ---- the patch rows read in place -------------------------------------------
  /// Whether the product reads the patches in place: where the product reads
  /// a table's rows in place (gemm::kGatheredRowsInPlace), and each tap, a
  /// run of C floats the product walks before moving to the next, is long
  /// enough (a first layer's 1 or 3 channels are better copied into rows).
  static bool reads_in_place(const ConvGeometry& g) { return gemm::kGatheredRowsInPlace && g.c >= 16; }

  /// Whether backward's weight gradient reads the patches through their row
  /// table (gemm::multiply_transposed: col^T dZ, the same sums in the same
  /// order) instead of making them again, as forward reads them: where
  /// forward would not have kept them.
  static bool weight_gradient_reads_in_place(const ConvGeometry& g) {
    return reads_in_place(g) && !identity_patches(g) && !keeps_patches(g);
  }

  /// One sample's patch rows as a row table (gemm::GatheredRows: KH * KW
  /// segments of C floats per row, table[pixel * KH * KW + tap]): a tap
  /// inside the image is read where it lies, one in the padding from `zeros`
  /// (C of them).
  static void gather(const ConvGeometry& g, const float* image, const float* zeros, const float** table) {
    // A window wholly inside the image is its corner plus fixed offsets (most
    // windows: a straight run of stores); one that reaches into the padding
    // is checked tap by tap.
    constexpr Index kMaxTaps = 64;
    const Index taps = g.kh * g.kw;
    Index off[kMaxTaps];
    const bool fixed = taps <= kMaxTaps;
    if (fixed)
      for (Index ky = 0, t = 0; ky < g.kh; ++ky)
        for (Index kx = 0; kx < g.kw; ++kx) off[t++] = (ky * g.w + kx) * g.c;
    for (Index oy = 0; oy < g.oh; ++oy) {
      const Index iy0 = oy * g.sh - g.pad_top;
      const bool rows_inside = iy0 >= 0 && iy0 + g.kh <= g.h;
      for (Index ox = 0; ox < g.ow; ++ox, table += taps) {
        const Index ix0 = ox * g.sw - g.pad_left;
        if (fixed && rows_inside && ix0 >= 0 && ix0 + g.kw <= g.w) {
          const float* corner = image + (iy0 * g.w + ix0) * g.c;
          for (Index t = 0; t < taps; ++t) table[t] = corner + off[t];
          continue;
        }
        const float** entry = table;
        for (Index ky = 0; ky < g.kh; ++ky) {
          const Index iy = iy0 + ky;
          const bool row_inside = iy >= 0 && iy < g.h;
          const float* row = row_inside ? image + iy * g.w * g.c : image;
          for (Index kx = 0; kx < g.kw; ++kx, ++entry) {
            const Index ix = ix0 + kx;
            *entry = row_inside && ix >= 0 && ix < g.w ? row + ix * g.c : zeros;
          }
        }
      }
    }
  }

 private:
  // A chunk's patch rows in place: its row table and the zeros of the padding.
  struct PatchTable {
    std::vector<const float*> table;
    std::vector<float> zeros;
  };

  // Samples [s0, s1) of the batch x as one row table (gather), in this
  // thread's table: kept across calls, as a table made afresh had its
  // pointers allocated and zeroed on every call. Valid until the thread's next call.
  static const PatchTable& gather_samples(const ConvGeometry& g, const float* x, Index s0, Index s1) {
    thread_local PatchTable t;
    const Index taps = g.kh * g.kw;
    t.table.resize(static_cast<std::size_t>((s1 - s0) * g.pixels() * taps));
    if (static_cast<Index>(t.zeros.size()) != g.c) t.zeros.assign(static_cast<std::size_t>(g.c), 0.0f);
    for (Index s = s0; s < s1; ++s)
      gather(g, x + s * g.input_size(), t.zeros.data(), t.table.data() + (s - s0) * g.pixels() * taps);
    return t;
  }

  // z = act(col W + b), chunk by chunk of samples, with bias and ReLU in the
  // product's epilogue. One chunk (one image) runs its product on every
  // thread. Where the input is the patch matrix (identity_patches), the
  // product reads it where it lies (a row table there measured 10 % slower
  // on 7x7 and 4x4 maps); else, where reads_in_place, the product reads the
  // patches through a row table (gather), which gives the same bits as the
  // patch matrix without writing it; otherwise each chunk's patches are
  // written out (to *keep when training keeps them, else to scratch) and
  // multiplied while in cache.
  static void compute(const ConvGeometry& g, const ConvWeights& w, const Tensor& x, Tensor& z, RowMatrix* keep,
                      Activation act, const ChannelNormalization& normalize, const SampleHook* after) {
    const Index k = g.patch(), f = g.f;
    const auto chunks = SampleChunks::balanced(x.dimension(0), chunk_samples(g));
    const ConstMatrixMap W(w.kernel, k, f);
    const gemm::Epilogue epilogue{false, w.bias, act == Activation::ReLU, normalize};
    if (keep || !reads_in_place(g) || identity_patches(g)) {
      parallel_for_with<RowMatrix>(chunks.count(), true, [&](Index c, RowMatrix& scratch) {
        const Index s0 = chunks.first(c), r0 = s0 * g.pixels(), rows = chunks.size(c) * g.pixels();
        const float* col = x.data() + s0 * g.input_size();  // the input itself, where it is the patch matrix
        if (!identity_patches(g)) {
          if (!keep) scratch.resize(rows, k);
          float* written = keep ? keep->data() + r0 * k : scratch.data();
          im2col_samples(g, x.data(), s0, chunks.end(c), written);
          col = written;
        }
        gemm::parallel_multiply(gemm::mutable_view(MatrixMap(z.data() + r0 * f, rows, f)),
                                gemm::view(ConstMatrixMap(col, rows, k)), gemm::view(W), epilogue);
        if (after) (*after)(s0, chunks.end(c));
      });
      return;
    }
    thread_local gemm::PackedB packed_here;
    gemm::PackedB& packed = packed_here;  // this thread's, read by the chunks on every thread
    packed.pack(gemm::view(W));
    parallel_for(chunks.count(), true, [&](Index c) {
      const Index s0 = chunks.first(c), r0 = s0 * g.pixels(), rows = chunks.size(c) * g.pixels();
      const PatchTable& t = gather_samples(g, x.data(), s0, chunks.end(c));
      gemm::parallel_multiply(gemm::mutable_view(MatrixMap(z.data() + r0 * f, rows, f)),
                              gemm::GatheredRows{t.table.data(), rows, g.kh * g.kw, g.c}, packed, epilogue);
      if (after) (*after)(s0, chunks.end(c));
    });
  }

  const Tensor* x_ = nullptr;  // the input of the last forward, kept by the caller
  RowMatrix col_;              // (P, K) patches of the last forward, where keeps_patches
  RowMatrix dw_parts_;         // (chunks * K, F) each chunk's share of dW
  PhasedInputGradient phases_; // dx's products, where backward takes them
};

}  // namespace loom::conv
