// Per-layer microbenchmarks at the shapes of the seed Fashion-MNIST CNN,
// batch 32, on synthetic inputs (no data files needed).
//
//   layer/conv1/{forward,backward}    Conv2D 32 3x3 relu   on (28, 28, 1)
//   layer/pool1/{forward,backward}    MaxPool2D 2          on (26, 26, 32)
//   layer/conv1+pool1/{forward,backward}  the two in one pass, as training runs them
//   layer/conv2/{forward,backward}    Conv2D 64 3x3 relu   on (13, 13, 32)
//   layer/pool2/{forward,backward}    MaxPool2D 2          on (11, 11, 64)
//   layer/avgpool1/{forward,backward} AveragePooling2D 2   on (26, 26, 32)
//   layer/avgpool2/{forward,backward} AveragePooling2D 2   on (11, 11, 64)
//   layer/gap/{forward,backward}      GlobalAveragePooling2D on (11, 11, 64)
//   layer/flatten/{forward,backward}  Flatten              on (5, 5, 64)
//   layer/dense1/{forward,backward}   Dense 128 relu       on (1600)
//   layer/dense2/{forward,backward}   Dense 10 softmax     on (128)
//
// The layers are those of the seed model itself (models::fashion_mnist_cnn,
// seed 42, compiled, so conv1 knows, as in training, that no one reads its
// input gradient), and each is fed what the layers before it make of one
// synthetic batch: images of max(0, uniform(-1, 1)) pixels, about half of them
// 0 as in Fashion-MNIST's background. Realistic activations matter because
// some costs depend on the data: with the first, branchy max-pool loop,
// pooling uniform noise took about 10x as long as pooling a ReLU output
// (about half zeros). The average-pooling cases run on the seed's convolutions
// with average pooling in their place (seed 42 too: the same convolution weights).
//
// What forward and backward time, and the counters: layer_cases.hpp. The FLOP
// convention (matrix products only, 2*M*N*K each; backward = dW + dX, dX
// skipped by conv1): flops.hpp.
//
// Threads and JSON output: see the top of bench_model.cpp, which holds main().

#include <iterator>
#include <string>

#include "layer_cases.hpp"
#include "loom/loom.hpp"

namespace {

using namespace loom;

const char* const kNames[] = {"conv1", "pool1", "conv2", "pool2", "flatten", "dense1", "dense2"};

bench::LayerInputs& seed_inputs() {
  static bench::LayerInputs f(models::fashion_mnist_cnn(42), 32, 1);
  return f;
}

// conv1, avgpool1, conv2, avgpool2, gap: the seed's convolutions with average pooling.
bench::LayerInputs& average_pooling_inputs() {
  static bench::LayerInputs f(
      [] {
        Sequential m(Shape{28, 28, 1}, 42);
        m.add(Conv2D({.filters = 32, .kernel = 3, .activation = Activation::ReLU}));
        m.add(AveragePooling2D({.pool = 2}));
        m.add(Conv2D({.filters = 64, .kernel = 3, .activation = Activation::ReLU}));
        m.add(AveragePooling2D({.pool = 2}));
        m.add(GlobalAveragePooling2D());
        return m;
      }(),
      32, 1);
  return f;
}

// conv1 and pool1 as training runs them: one pass (Conv2D pools for the
// MaxPool2D after it, DirectConv::forward_pooled), forward and backward.
// GFLOP/s counts conv1's products; against layer/conv1 + layer/pool1, the
// same layers timed apart.
struct FusedPair {
  Sequential model = models::fashion_mnist_cnn(42);
  Tensor x, dy;
  FusedPair() {
    Random rng(1);
    x = bench::random_images(32, model.input_shape(), rng);
    Random grads(2);
    dy = bench::random_batch(32, model.layer(1).output_shape(), grads, -1e-2f, 1e-2f);
  }
  const Tensor& forward() { return model.layer(1).forward(model.layer(0).forward(x)); }
  void backward() { model.layer(0).backward(model.layer(1).backward(dy)); }
  void report(benchmark::State& state, double flops_per_image) const {
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) * 32);
    state.counters["GFLOP/s"] =
        benchmark::Counter(flops_per_image * 32 * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  }
};

FusedPair& fused_pair() {
  static FusedPair f;
  return f;
}

void fused_pair_forward(benchmark::State& state) {
  FusedPair& f = fused_pair();
  const FlushDenormals flush;
  for (auto _ : state) {
    benchmark::DoNotOptimize(f.forward().data());
    benchmark::ClobberMemory();
  }
  f.report(state, bench::forward_flops_per_image(f.model.layer(0)));
}

void fused_pair_backward(benchmark::State& state) {
  FusedPair& f = fused_pair();
  const FlushDenormals flush;
  f.forward();
  for (auto _ : state) {
    f.backward();
    benchmark::ClobberMemory();
  }
  f.report(state, bench::backward_flops_per_image(f.model.layer(0)));
}

BENCHMARK(fused_pair_forward)->Name("layer/conv1+pool1/forward")->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(fused_pair_backward)->Name("layer/conv1+pool1/backward")->UseRealTime()->Unit(benchmark::kMicrosecond);

[[maybe_unused]] const bool registered = [] {
  for (std::size_t i = 0; i < std::size(kNames); ++i)
    bench::register_layer_cases(std::string("layer/") + kNames[i], seed_inputs, i);
  bench::register_layer_cases("layer/avgpool1", average_pooling_inputs, 1);
  bench::register_layer_cases("layer/avgpool2", average_pooling_inputs, 3);
  bench::register_layer_cases("layer/gap", average_pooling_inputs, 4);
  return true;
}();

}  // namespace
