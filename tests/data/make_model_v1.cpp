// Writes tests/data/model_v1.loom and model_v1_predictions.txt: a model file
// written by the build before the layer registry (commit 43c2fd0), and what
// that build predicted with it, for tests/test_model_file_compat.cpp, which
// checks that today's build loads the file and predicts the same bits.
// Every layer kind of that time is in it. Built by hand against 43c2fd0:
//   g++ -std=c++20 -O2 -fopenmp -I include -I /usr/include/eigen3 \
//     tests/data/make_model_v1.cpp build/libloom.a -lz -o /tmp/make_model_v1
//   /tmp/make_model_v1 tests/data
#include <cstdio>
#include <fstream>
#include <string>

#include "loom/loom.hpp"

int main(int argc, char** argv) {
  const std::string dir = argc > 1 ? argv[1] : ".";
  loom::Sequential m(loom::Shape{8, 8, 2}, 11);
  m.add(loom::Conv2D({.filters = 3, .kernel = 3, .padding = loom::Padding::Same, .activation = loom::Activation::ReLU}));
  m.add(loom::MaxPool2D({.pool = 2}));
  m.add(loom::Conv2D({.filters = 4, .kernel = {2, 3}, .strides = {1, 2}}));
  m.add(loom::ReLU());
  m.add(loom::Flatten());
  m.add(loom::Dense({.units = 5, .activation = loom::Activation::ReLU}));
  m.add(loom::Dense({.units = 3}));
  m.add(loom::Softmax());
  m.compile(loom::Adam(), loom::SparseCategoricalCrossentropy(), {"accuracy"});
  loom::Random rng(5);
  loom::Tensor x(6, 8, 8, 2);
  for (loom::Index i = 0; i < x.size(); ++i) x.data()[i] = rng.uniform(-1.0f, 1.0f);
  const std::vector<loom::Label> y = {0, 1, 2, 0, 1, 2};
  m.fit(x, y, {.epochs = 2, .batch_size = 3, .verbose = 0});  // weights, optimizer state and history not at their start
  m.save(dir + "/model_v1.loom");
  const loom::Tensor p = m.predict(x);
  std::ofstream out(dir + "/model_v1_predictions.txt");
  for (loom::Index i = 0; i < p.size(); ++i) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%a\n", static_cast<double>(p.data()[i]));
    out << buf;
  }
}
