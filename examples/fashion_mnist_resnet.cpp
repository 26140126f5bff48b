// A small ResNet on Fashion-MNIST: a convolution stem, three residual blocks
// (the ResNet basic block: two 3x3 convolutions with BatchNormalization, an
// identity or a strided 1x1 projection shortcut, the sum through a ReLU),
// global average pooling, dropout and a softmax classifier. In Keras terms:
//
//   x = Conv2D(32, 3, padding="same")(inputs); x = BatchNormalization()(x); x = ReLU()(x)
//   x = MaxPooling2D(2)(x)                                  # 14x14x32
//   x = basic_block(x, 32)                                  # identity shortcut
//   x = basic_block(x, 64, strides=2)                       # 7x7x64, projection shortcut
//   x = basic_block(x, 64)
//   x = GlobalAveragePooling2D()(x); x = Dropout(0.3)(x)
//   outputs = Dense(10, activation="softmax")(x)
//
// Same flags and output as fashion_mnist_cnn (the summary, the test accuracy,
// one JSON line), and it always saves the trained model, loads it back and
// checks the predictions are bit for bit the same (--save FILE keeps the file).
//
//   fashion_mnist_resnet [--epochs 5] [--batch-size 32] [--limit N] [--data DIR]
//                        [--seed 7] [--threads N] [--verbose 0|1|2] [--save FILE]

#include "loom/loom.hpp"
#include "loom/training/example_program.hpp"

namespace {

using namespace loom;

Conv2D conv3x3(Index filters, Index strides = 1) {
  return Conv2D({.filters = filters, .kernel = 3, .strides = strides, .padding = Padding::Same});
}

// conv-BN-ReLU-conv-BN, plus the shortcut, then ReLU. A block that changes the
// size or the channels projects its shortcut with a strided 1x1 conv and BN.
Residual basic_block(Index in_filters, Index filters, Index strides = 1) {
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

Sequential small_resnet(std::uint64_t seed) {
  Sequential model(Shape{28, 28, 1}, seed);
  model.add(conv3x3(32));
  model.add(BatchNormalization());
  model.add(ReLU());
  model.add(MaxPool2D({.pool = 2}));
  model.add(basic_block(32, 32));
  model.add(basic_block(32, 64, 2));
  model.add(basic_block(64, 64));
  model.add(GlobalAveragePooling2D());
  model.add(Dropout(0.3f));
  model.add(Dense({.units = 10, .activation = Activation::Softmax}));
  model.compile(Adam(), SparseCategoricalCrossentropy(), {"accuracy"});
  return model;
}

}  // namespace

int main(int argc, char** argv) {
  return loom::cli::run_fashion_mnist_example(
      argc, argv,
      {.program = "fashion_mnist_resnet",
       .description = "Trains a small ResNet (BatchNorm, residual blocks, global pooling, dropout) on Fashion-MNIST.",
       .round_trip = true},
      small_resnet);
}
