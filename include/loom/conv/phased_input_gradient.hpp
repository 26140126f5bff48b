#pragma once
// A convolution's input gradient without patch gradients: dx computed as one
// matrix product per phase of the stride, reading dZ in place.
//
// Input pixel iy receives from output pixel oy through kernel row ky when
// iy = oy * SH + ky - pad_top. For the pixels of one phase, iy = SH * a + py,
// the rows that reach them are the same set, ky = py + pad_top (mod SH), and
// oy = a + (py + pad_top - ky) / SH: a fixed offset per tap. The same holds
// along the width. So the pixels of phase (py, px) form a grid whose dx is a
// stride-1 product:
//
//   dx[SH a + py, SW b + px, :] = sum over the phase's taps (ky, kx) of
//                                  dZ[a + dy(ky), b + dx(kx), :] W[ky, kx, :, :]^T
//
// A row of the product's A is the phase's taps of dZ (F floats each, or zeros
// where the offset leaves the output), read through a row table (gemm's
// GatheredRows), B the phase's kernel rows transposed, (taps * F, C). The
// multiply-adds are those of dcol = dZ W^T; gone are the patch gradients
// (2.25 times the input for a 3x3 kernel of stride 2, written and read back),
// col2im's scattered adds and the zeroing of dx. A stride-1 layer is one
// phase whose grid is the image itself: its product writes dx in place. A
// strided phase's product writes each row to its pixel through a table of
// pointers (gemm's ScatteredRows), straight from the registers, not through
// a buffer and a copy (2-4 % of the ResNet's strided backward passes).
// Pixels no tap reaches (a kernel smaller than the stride) get zeros.
//
// Each dx element is one dot product over its taps in (ky, kx) order, then
// over F: fixed by the shapes, so the results do not depend on the threads.
//
// Thread safety: prepare from one thread; write_chunk from many at once (scratch per call).

#include <algorithm>
#include <vector>

#include "loom/conv/conv_geometry.hpp"
#include "loom/gemm.hpp"

namespace loom::conv {

class PhasedInputGradient {
 public:
  /// Whether products read dZ through a row table where it lies (AVX-512
  /// builds) and its rows are long enough to pay: else a caller is better off
  /// with the patch gradients (as forward is with its patches, reads_in_place).
  static bool worth_it(const ConvGeometry& g) { return gemm::kGatheredRowsInPlace && g.f >= 16; }

  /// The phases of g and their kernels, packed: once per backward, before
  /// write_chunk. Each step's weights are new; the phases' storage is reused.
  void prepare(const ConvGeometry& g, const float* kernel) {
    zeros_.assign(static_cast<std::size_t>(g.f), 0.0f);
    const Index rows = std::min(g.sh, g.h), cols = std::min(g.sw, g.w);
    phases_.resize(static_cast<std::size_t>(rows * cols));
    for (Index py = 0; py < rows; ++py)
      for (Index px = 0; px < cols; ++px) make_phase(g, kernel, py, px, phases_[static_cast<std::size_t>(py * cols + px)]);
  }

  /// dx of samples [s0, s1) (N, H, W, C: the whole batch's tensor) from dZ
  /// ((N * OH * OW, F) rows of the whole batch), assigned or added.
  void write_chunk(const ConvGeometry& g, const float* dz, Index s0, Index s1, float* dx, bool add) const {
    thread_local Scratch scratch;
    for (const Phase& ph : phases_) {
      const Index rows = (s1 - s0) * ph.na * ph.nb, taps = static_cast<Index>(ph.tap_offsets.size());
      if (taps == 0) {  // a kernel smaller than the stride: no output pixel reaches these
        if (!add) for_each_pixel(g, ph, s0, s1, dx, [&](Index, float* to) { VectorMap(to, g.c).setZero(); });
        continue;
      }
      scratch.table.resize(static_cast<std::size_t>(rows * taps));
      const float** entry = scratch.table.data();
      for (Index s = s0; s < s1; ++s)
        for (Index a = 0; a < ph.na; ++a)
          for (Index b = 0; b < ph.nb; ++b)
            for (const Offset& o : ph.tap_offsets) {
              const Index oy = a + o.dy, ox = b + o.dx;
              const bool inside = oy >= 0 && oy < g.oh && ox >= 0 && ox < g.ow;
              *entry++ = inside ? dz + ((s * g.oh + oy) * g.ow + ox) * g.f : zeros_.data();
            }
      const gemm::GatheredRows a{scratch.table.data(), rows, taps, g.f};
      if (g.sh == 1 && g.sw == 1) {  // the grid is the image: dx's rows are the product's
        gemm::multiply({dx + s0 * g.input_size(), rows, g.c, g.c, 1}, a, ph.kernel, {add});
        continue;
      }
      scratch.pixels.resize(static_cast<std::size_t>(rows));
      for_each_pixel(g, ph, s0, s1, dx, [&](Index row, float* to) { scratch.pixels[static_cast<std::size_t>(row)] = to; });
      gemm::multiply(gemm::ScatteredRows{scratch.pixels.data(), rows, g.c}, a, ph.kernel, {add});
    }
  }

 private:
  struct Offset {
    Index dy, dx;  // output pixel (a + dy, b + dx) reaches phase pixel (a, b)
  };
  struct Phase {
    Index py = 0, px = 0;  // the phase's first input row and column
    Index na = 0, nb = 0;  // its grid: rows py, py + SH, ... below H; columns likewise
    std::vector<Offset> tap_offsets;
    gemm::PackedB kernel;  // (taps * F, C): tap t's rows are W[ky, kx]^T
  };
  struct Scratch {
    std::vector<const float*> table;
    std::vector<float*> pixels;  // a strided phase's dx pixels: its product's rows
  };

  // The taps along one axis that reach input position p (mod stride) and the
  // output offset of each: t = p + pad (mod stride), offset (p + pad - t) / stride.
  static std::vector<std::pair<Index, Index>> axis_taps(Index p, Index pad, Index k, Index stride) {
    std::vector<std::pair<Index, Index>> taps;
    for (Index t = 0; t < k; ++t)
      if (((p + pad - t) % stride + stride) % stride == 0) taps.emplace_back(t, (p + pad - t) / stride);
    return taps;
  }

  // Phase (py, px) of g into ph, whose vectors and panels keep their storage.
  void make_phase(const ConvGeometry& g, const float* kernel, Index py, Index px, Phase& ph) {
    ph.py = py, ph.px = px;
    ph.na = (g.h - py + g.sh - 1) / g.sh, ph.nb = (g.w - px + g.sw - 1) / g.sw;
    const auto ys = axis_taps(py, g.pad_top, g.kh, g.sh), xs = axis_taps(px, g.pad_left, g.kw, g.sw);
    ph.tap_offsets.clear();
    transposed_.resize(static_cast<Index>(ys.size() * xs.size()) * g.f, g.c);
    Index t = 0;
    for (const auto& [ky, dy] : ys)
      for (const auto& [kx, dx] : xs) {
        ph.tap_offsets.push_back({dy, dx});
        const ConstMatrixMap w(kernel + (ky * g.kw + kx) * g.c * g.f, g.c, g.f);  // W[ky, kx]: (C, F)
        transposed_.middleRows(t++ * g.f, g.f) = w.transpose();
      }
    if (t > 0) ph.kernel.pack(gemm::view(transposed_));
  }

  // fn(row of the phase's product, dx's C floats at that pixel) for each pixel of the phase in samples [s0, s1).
  template <typename Fn>
  static void for_each_pixel(const ConvGeometry& g, const Phase& ph, Index s0, Index s1, float* dx, Fn&& fn) {
    Index row = 0;
    for (Index s = s0; s < s1; ++s)
      for (Index a = 0; a < ph.na; ++a) {
        float* to = dx + s * g.input_size() + ((g.sh * a + ph.py) * g.w + ph.px) * g.c;
        for (Index b = 0; b < ph.nb; ++b, to += g.sw * g.c) fn(row++, to);
      }
  }

  std::vector<Phase> phases_;
  std::vector<float> zeros_;  // F of them: the taps that leave the output
  RowMatrix transposed_;      // a phase's kernel rows transposed, before packing
};

}  // namespace loom::conv
