// The textbook Keras Fashion-MNIST CNN, line for line in loom:
//
//   model = keras.Sequential([
//       layers.Conv2D(32, (3, 3), activation="relu", input_shape=(28, 28, 1)),
//       layers.MaxPooling2D((2, 2)),
//       layers.Conv2D(64, (3, 3), activation="relu"),
//       layers.MaxPooling2D((2, 2)),
//       layers.Flatten(),
//       layers.Dense(128, activation="relu"),
//       layers.Dense(10, activation="softmax")])
//   model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
//   model.summary()
//   model.fit(x_train, y_train, epochs=5, batch_size=32)
//   test_loss, test_acc = model.evaluate(x_test, y_test)
//
// Prints the summary and the test accuracy on stdout, the progress on stderr,
// and ends with one JSON line on stdout for CI systems.
//
//   fashion_mnist_cnn [--epochs 5] [--batch-size 32] [--limit N] [--data DIR]
//                     [--seed 7] [--threads N] [--verbose 0|1|2] [--distributed]
//                     [--save FILE]
//
// With --distributed, under mpirun -np N, the ranks train data-parallel
// (docs/distributed.md) and rank 0 alone prints.

#include "loom/loom.hpp"
#include "loom/training/example_program.hpp"

int main(int argc, char** argv) {
  using namespace loom;
  return cli::run_fashion_mnist_example(
      argc, argv,
      {.program = "fashion_mnist_cnn",
       .description = "Trains the Keras Fashion-MNIST CNN and prints the test accuracy, then one JSON line."},
      [](std::uint64_t seed) {
        Sequential model(Shape{28, 28, 1}, seed);
        model.add(Conv2D({.filters = 32, .kernel = 3, .activation = Activation::ReLU}));
        model.add(MaxPool2D({.pool = 2}));
        model.add(Conv2D({.filters = 64, .kernel = 3, .activation = Activation::ReLU}));
        model.add(MaxPool2D({.pool = 2}));
        model.add(Flatten());
        model.add(Dense({.units = 128, .activation = Activation::ReLU}));
        model.add(Dense({.units = 10, .activation = Activation::Softmax}));
        model.compile(Adam(), SparseCategoricalCrossentropy(), {"accuracy"});
        return model;
      });
}
