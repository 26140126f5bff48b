#pragma once
// The batch's tiles for Winograd F(m x m, 3 x 3): how they are numbered, cut
// into chunks and laid out in buffers of slabs (Tiles), and the walk over a
// chunk's tiles (for_each_tile).
//
// Part of the Winograd convolution's implementation, included by
// src/winograd_conv.cpp alone: its names live in that file's anonymous
// namespace, one translation unit, so the compiler inlines across the parts
// as it did when they were one file.

#include <algorithm>
#include <cstddef>

#include "loom/conv/conv_geometry.hpp"
#include "loom/conv/winograd_transforms.hpp"
#include "loom/tensor.hpp"

namespace loom::conv {
namespace {

// The batch's tiles: rows x cols per sample, numbered sample by sample.
// Buffers of tiles (V, dMx) are chunk-major: chunk c's a*a slabs (its
// tiles, width) come one after the other, so a chunk's tiles stay close in
// memory. Slabs are `slab(count, width)` floats apart: one cache line more
// than their values (kSlabPad; U's slabs too, kernel_slab). A tile's a*a
// vectors go to (and come from) a*a slabs; unpadded, 128 tiles of 32
// channels put them 16 KB apart, all in one L1 set, and the stores and loads
// of the transforms were half of vgg's inference (perf annotate); padded,
// they fall into a*a different sets.
constexpr Index kSlabPad = 16;

template <int M>
struct Tiles {
  static constexpr int XI = winograd::Matrices<M>::a * winograd::Matrices<M>::a;  // tile positions
  Index n, rows, cols, per_sample, total;
  Tiles(const ConvGeometry& g, Index samples)
      : n(samples), rows((g.oh + M - 1) / M), cols((g.ow + M - 1) / M), per_sample(rows * cols),
        total(n * per_sample) {}
  // About 128 tiles per chunk (bench_conv: 64 and 256 were slower at every shape tried).
  static constexpr Index kChunkTiles = 128;
  SampleChunks chunks() const { return SampleChunks::balanced(n, std::max<Index>(1, kChunkTiles / per_sample)); }
  Index first(const SampleChunks& ch, Index c) const { return ch.first(c) * per_sample; }
  Index count(const SampleChunks& ch, Index c) const { return ch.size(c) * per_sample; }
  static Index slab(Index count, Index width) { return count * width + kSlabPad; }
  // Where chunk c's slabs start in a buffer of every chunk's, and that buffer's size.
  Index chunk_offset(const SampleChunks& ch, Index c, Index width) const {
    return XI * (first(ch, c) * width + c * kSlabPad);
  }
  std::size_t buffer_size(const SampleChunks& ch, Index width) const {
    return static_cast<std::size_t>(XI * (total * width + ch.count() * kSlabPad));
  }
};

// fn(sample, tile row, tile column, tile index within the chunk) for each
// tile of chunk c, or for its tiles [t0, t1).
template <int M, typename Fn>
inline void for_each_tile(const Tiles<M>& t, const SampleChunks& ch, Index c, Fn&& fn, Index t0 = 0,
                          Index t1 = -1) {
  if (t1 < 0) t1 = t.count(ch, c);
  const Index r = t0 % t.per_sample;
  Index s = ch.first(c) + t0 / t.per_sample, ty = r / t.cols, tx = r % t.cols;
  for (Index ti = t0; ti < t1; ++ti) {
    fn(s, ty, tx, ti);
    if (++tx == t.cols) {
      tx = 0;
      if (++ty == t.rows) ty = 0, ++s;
    }
  }
}

}  // namespace
}  // namespace loom::conv
