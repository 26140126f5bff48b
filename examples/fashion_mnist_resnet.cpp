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
#include "loom/models/small_resnet.hpp"
#include "loom/training/example_program.hpp"

namespace {

// The network is models/small_resnet.hpp (shared with the best recipe), compiled as Keras would by default.
loom::Sequential small_resnet(std::uint64_t seed) {
  loom::Sequential model = loom::models::small_resnet(seed, {.dropout = 0.3f});
  model.compile(loom::Adam(), loom::SparseCategoricalCrossentropy(), {"accuracy"});
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
