#pragma once
// A small ResNet for 28x28 grey images: a convolution stem, three stages of
// residual blocks (one each by default; the ResNet basic block: two 3x3
// convolutions with BatchNormalization, an identity or a strided 1x1
// projection shortcut, the sum through a ReLU), global average pooling,
// dropout and a softmax classifier. In Keras terms, with the default filters {32, 64, 64} and
// strides {1, 2, 1}:
//
//   x = Conv2D(32, 3, padding="same")(inputs); x = BatchNormalization()(x); x = ReLU()(x)
//   x = MaxPooling2D(2)(x)                                  # 14x14x32
//   x = basic_block(x, 32)                                  # identity shortcut
//   x = basic_block(x, 64, strides=2)                       # 7x7x64, projection shortcut
//   x = basic_block(x, 64)
//   x = GlobalAveragePooling2D()(x); x = Dropout(dropout)(x)
//   outputs = Dense(10, activation="softmax")(x)
//
// The network of examples/fashion_mnist_resnet.cpp (the defaults, dropout
// 0.3) and of the best recipe (models/fashion_mnist_best.hpp: filters {32, 64,
// 128}, strides {2, 2, 2} and no max pool: the first block, not a pool,
// halves the stem's 28x28). The stem has the first block's filters. Not compiled: the
// caller chooses the optimizer and loss.
//
// With pool_downsample a stage of stride s > 1 starts with an s x s max pool
// (same padding) and its blocks run at stride 1: every 3x3 convolution is then
// of stride 1, which loom computes by Winograd, where a strided one is a plain
// product (docs/best-recipe.md measures the step both ways). A stage's first
// block still projects its shortcut where the channels change.
//
// Thread safety: every call builds a new model.

#include <array>
#include <cstdint>
#include <string>

#include "loom/layers/average_pooling2d.hpp"
#include "loom/layers/batch_normalization.hpp"
#include "loom/layers/conv2d.hpp"
#include "loom/layers/dense.hpp"
#include "loom/layers/dropout.hpp"
#include "loom/layers/global_average_pooling2d.hpp"
#include "loom/layers/maxpool2d.hpp"
#include "loom/layers/relu.hpp"
#include "loom/layers/residual.hpp"
#include "loom/sequential.hpp"

namespace loom::models {

struct SmallResNetOptions {
  std::array<Index, 3> filters{32, 64, 64};  // of each block (the stem has the first's)
  std::array<Index, 3> strides{1, 2, 1};     // of each stage's first convolution
  std::array<Index, 3> blocks{1, 1, 1};      // basic blocks per stage (only the first strides)
  bool stem_pool = true;                     // the stem's 2x2 max pool (without: stride the first stage)
  bool zero_init_residual = false;           // each branch's last BatchNormalization starts at gamma 0
  bool pooled_shortcut = false;              // a strided projection averages windows first (below)
  bool pool_downsample = false;              // a strided stage max-pools first, then runs at stride 1 (below)
  float dropout = 0.3f;                      // before the classifier
  Index classes = 10;
};

namespace detail {

inline Conv2D conv3x3(Index filters, Index strides = 1) {
  return Conv2D({.filters = filters, .kernel = 3, .strides = strides, .padding = Padding::Same});
}

// conv-BN-ReLU-conv-BN, plus the shortcut, then ReLU. A block that changes the
// size or the channels projects its shortcut with a strided 1x1 conv and BN.
// With zero_init_residual the branch starts as zero, the block as the
// shortcut (Goyal et al. 2017), which eases the first steps at high rates.
// With pooled_shortcut a strided projection averages each strides x strides
// window (same padding, as the main path's) and then applies a 1x1 conv of
// stride 1, so the shortcut sees every input pixel where the strided 1x1 saw
// one in four (ResNet-D, He et al. 2019, "Bag of Tricks"); the same
// multiply-adds.
inline Residual basic_block(Index in_filters, Index filters, Index strides, bool zero_init_residual,
                            bool pooled_shortcut = false) {
  Residual block({.activation = Activation::ReLU});
  block.add(conv3x3(filters, strides));
  block.add(BatchNormalization());
  block.add(ReLU());
  block.add(conv3x3(filters));
  block.add(BatchNormalization({.initial_gamma = zero_init_residual ? 0.0f : 1.0f}));
  if (strides != 1 || in_filters != filters) {
    const bool pool = pooled_shortcut && strides != 1;
    if (pool) block.add_shortcut(AveragePooling2D({.pool = strides, .padding = Padding::Same}));
    block.add_shortcut(Conv2D({.filters = filters, .kernel = 1, .strides = pool ? 1 : strides}));
    block.add_shortcut(BatchNormalization());
  }
  return block;
}

}  // namespace detail

inline Sequential small_resnet(std::uint64_t seed, const SmallResNetOptions& o = {}) {
  for (std::size_t i = 0; i < 3; ++i) {
    if (o.filters[i] <= 0)
      throw UsageError("small_resnet: filters of block " + std::to_string(i + 1) + " must be positive, got " +
                       std::to_string(o.filters[i]));
    if (o.strides[i] <= 0)
      throw UsageError("small_resnet: strides of block " + std::to_string(i + 1) + " must be positive, got " +
                       std::to_string(o.strides[i]));
    if (o.blocks[i] <= 0)
      throw UsageError("small_resnet: blocks of stage " + std::to_string(i + 1) + " must be positive, got " +
                       std::to_string(o.blocks[i]));
  }
  Sequential model(Shape{28, 28, 1}, seed);
  model.add(detail::conv3x3(o.filters[0]));
  model.add(BatchNormalization());
  model.add(ReLU());
  if (o.stem_pool) model.add(MaxPool2D({.pool = 2}));
  Index in = o.filters[0];
  for (std::size_t i = 0; i < 3; ++i) {
    const bool pool_first = o.pool_downsample && o.strides[i] > 1;
    if (pool_first) model.add(MaxPool2D({.pool = o.strides[i], .padding = Padding::Same}));
    for (Index b = 0; b < o.blocks[i]; ++b) {
      const Index strides = b == 0 && !pool_first ? o.strides[i] : 1;
      model.add(detail::basic_block(in, o.filters[i], strides, o.zero_init_residual, o.pooled_shortcut));
      in = o.filters[i];
    }
  }
  model.add(GlobalAveragePooling2D());
  model.add(Dropout(o.dropout));
  model.add(Dense({.units = o.classes, .activation = Activation::Softmax}));
  return model;
}

}  // namespace loom::models
