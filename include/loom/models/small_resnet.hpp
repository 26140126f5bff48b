#pragma once
// A small ResNet for 28x28 grey images: a convolution stem, three residual
// blocks (the ResNet basic block: two 3x3 convolutions with
// BatchNormalization, an identity or a strided 1x1 projection shortcut, the
// sum through a ReLU), global average pooling, dropout and a softmax
// classifier. In Keras terms, with w = width:
//
//   x = Conv2D(w, 3, padding="same")(inputs); x = BatchNormalization()(x); x = ReLU()(x)
//   x = MaxPooling2D(2)(x)                                  # 14x14xw
//   x = basic_block(x, w)                                   # identity shortcut
//   x = basic_block(x, 2w, strides=2)                       # 7x7x2w, projection shortcut
//   x = basic_block(x, 2w)
//   x = GlobalAveragePooling2D()(x); x = Dropout(dropout)(x)
//   outputs = Dense(10, activation="softmax")(x)
//
// The network of examples/fashion_mnist_resnet.cpp (width 32, dropout 0.3)
// and of the best recipe (models/fashion_mnist_best.hpp). Not compiled: the
// caller chooses the optimizer and loss.
//
// Thread safety: every call builds a new model.

#include <cstdint>

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
  Index width = 32;       // filters of the stem and the first block; the others have twice as many
  float dropout = 0.3f;   // before the classifier
  Index classes = 10;
};

namespace detail {

inline Conv2D conv3x3(Index filters, Index strides = 1) {
  return Conv2D({.filters = filters, .kernel = 3, .strides = strides, .padding = Padding::Same});
}

// conv-BN-ReLU-conv-BN, plus the shortcut, then ReLU. A block that changes the
// size or the channels projects its shortcut with a strided 1x1 conv and BN.
inline Residual basic_block(Index in_filters, Index filters, Index strides = 1) {
  Residual block({.activation = Activation::ReLU});
  block.add(conv3x3(filters, strides));
  block.add(BatchNormalization());
  block.add(ReLU());
  block.add(conv3x3(filters));
  block.add(BatchNormalization());
  if (strides != 1 || in_filters != filters) {
    block.add_shortcut(Conv2D({.filters = filters, .kernel = 1, .strides = strides}));
    block.add_shortcut(BatchNormalization());
  }
  return block;
}

}  // namespace detail

inline Sequential small_resnet(std::uint64_t seed, const SmallResNetOptions& o = {}) {
  if (o.width <= 0) throw UsageError("small_resnet: width must be positive, got " + std::to_string(o.width));
  const Index w = o.width;
  Sequential model(Shape{28, 28, 1}, seed);
  model.add(detail::conv3x3(w));
  model.add(BatchNormalization());
  model.add(ReLU());
  model.add(MaxPool2D({.pool = 2}));
  model.add(detail::basic_block(w, w));
  model.add(detail::basic_block(w, 2 * w, 2));
  model.add(detail::basic_block(2 * w, 2 * w));
  model.add(GlobalAveragePooling2D());
  model.add(Dropout(o.dropout));
  model.add(Dense({.units = o.classes, .activation = Activation::Softmax}));
  return model;
}

}  // namespace loom::models
