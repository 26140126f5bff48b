// Per-layer microbenchmarks at the shapes of the seed Fashion-MNIST CNN,
// batch 32, on synthetic inputs (no data files needed).
//
//   layer/conv1/{forward,backward}    Conv2D 32 3x3 relu   on (28, 28, 1)
//   layer/pool1/{forward,backward}    MaxPool2D 2          on (26, 26, 32)
//   layer/conv2/{forward,backward}    Conv2D 64 3x3 relu   on (13, 13, 32)
//   layer/pool2/{forward,backward}    MaxPool2D 2          on (11, 11, 64)
//   layer/flatten/{forward,backward}  Flatten              on (5, 5, 64)
//   layer/dense1/{forward,backward}   Dense 128 relu       on (1600)
//   layer/dense2/{forward,backward}   Dense 10 softmax     on (128)
//
// The layers are those of the seed model itself (built and compiled as in
// examples/fashion_mnist_cnn.cpp, seed 42, so conv1 knows, as in training,
// that no one reads its input gradient), and each is fed what the layers
// before it make of one synthetic batch: images of max(0, uniform(-1, 1))
// pixels, about half of them 0 as in Fashion-MNIST's background. Realistic
// activations matter because some costs depend on the data: with the first,
// branchy max-pool loop, pooling uniform noise took about 10x as long as
// pooling a ReLU output (about half zeros).
//
// "forward" is the training forward (Layer::forward: keeps what backward
// needs, activation included). "backward" is Layer::backward after one
// forward, activation derivative included; for dense2 it is
// backward_from_logits, the path training takes with the fused softmax loss.
// The upstream gradient dy is uniform in [-0.01, 0.01).
//
// Counters (rates over wall time: every benchmark here uses UseRealTime,
// since OpenMP threads do the work and the main thread's CPU time would
// understate it):
//   items_per_second  images per second
//   GFLOP/s           matrix-product arithmetic per second (Conv2D, Dense)
//   bytes_per_second  float traffic, input + output, (MaxPool2D, Flatten:
//                     no products, so FLOP/s would say nothing)
//
// FLOP convention. Only matrix products count, each as 2*M*N*K:
//   Conv2D forward  = 2 * N*OH*OW * K * F   with K = KH*KW*C   (col (P,K) x W (K,F))
//   Dense forward   = 2 * N * I * O
//   backward        = 2 * forward           (dW = col^T dZ and dX = dZ W^T, each
//                                            a product of the forward's size)
//                   = 1 * forward           for a layer that skips dX
//                                            (!needs_input_gradient(): conv1)
// Bias adds, activations, im2col/col2im and pooling are not counted.
//
// Threads and JSON output: see the top of bench_model.cpp, which holds main().

#include <benchmark/benchmark.h>

#include <algorithm>
#include <iterator>
#include <string>
#include <vector>

#include "loom/loom.hpp"

namespace {

using namespace loom;

constexpr Index kBatch = 32;

// (n, shape) filled with uniform values in [lo, hi).
Tensor random_batch(Index n, const Shape& s, Random& rng, float lo, float hi) {
  Tensor t(n, s.height(), s.width(), s.channels());
  for (Index i = 0; i < t.size(); ++i) t.data()[i] = rng.uniform(lo, hi);
  return t;
}

// Matrix-product FLOPs of one forward pass of a built layer over n samples:
// 2 * n * OH * OW * |kernel|, which is 2*N*OH*OW*K*F for Conv2D (kernel
// K x F) and 2*N*I*O for Dense (output 1 x 1). Zero for layers without a kernel.
double forward_flops(const Layer& layer, Index n) {
  for (const Param& p : layer.params())
    if (p.name == "kernel")
      return 2.0 * static_cast<double>(n) * static_cast<double>(layer.output_shape().height()) *
             static_cast<double>(layer.output_shape().width()) * static_cast<double>(p.size());
  return 0.0;
}

const char* const kNames[] = {"conv1", "pool1", "conv2", "pool2", "flatten", "dense1", "dense2"};

// The seed model and the input each of its layers sees for one synthetic batch.
struct SeedModel {
  Sequential model = models::fashion_mnist_cnn(42);
  std::vector<Tensor> inputs;  // inputs[i] (N, input shape of layer i)

  SeedModel() {
    Random rng(1);
    Tensor x(kBatch, 28, 28, 1);
    for (Index i = 0; i < x.size(); ++i) x.data()[i] = std::max(0.0f, rng.uniform(-1.0f, 1.0f));
    for (std::size_t i = 0; i < model.size(); ++i) {
      inputs.push_back(x);
      x = model.layer(i).forward(x);
    }
  }
};

// Built on first use; benchmarks run one at a time, so sharing it is safe.
SeedModel& seed_model() {
  static SeedModel m;
  return m;
}

// Sets the counters shared by forward and backward; flops is per iteration.
void report(benchmark::State& state, const Layer& layer, double flops) {
  const auto iterations = static_cast<std::int64_t>(state.iterations());
  state.SetItemsProcessed(iterations * kBatch);
  if (flops > 0.0) {
    state.counters["GFLOP/s"] = benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  } else {
    const auto floats = kBatch * (layer.input_shape().size() + layer.output_shape().size());
    state.SetBytesProcessed(iterations * floats * static_cast<std::int64_t>(sizeof(float)));
  }
}

void layer_forward(benchmark::State& state, std::size_t i) {
  Layer& layer = seed_model().model.layer(i);
  const Tensor& x = seed_model().inputs[i];
  const FlushDenormals flush;  // as fit and train_batch do
  for (auto _ : state) {
    const Tensor& y = layer.forward(x);
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  report(state, layer, forward_flops(layer, kBatch));
}

void layer_backward(benchmark::State& state, std::size_t i) {
  Layer& layer = seed_model().model.layer(i);
  const Tensor& x = seed_model().inputs[i];
  Random rng(2);
  const Tensor dy = random_batch(kBatch, layer.output_shape(), rng, -1e-2f, 1e-2f);
  const FlushDenormals flush;
  layer.forward(x);  // backward reads what this forward kept; it changes none of it
  const bool fused = layer.ends_with_softmax();
  for (auto _ : state) {
    const Tensor& dx = fused ? layer.backward_from_logits(dy) : layer.backward(dy);
    benchmark::DoNotOptimize(dx.data());
    benchmark::ClobberMemory();
  }
  // dW always; dX unless the layer skips it (the first layer, as in training).
  report(state, layer, (layer.needs_input_gradient() ? 2.0 : 1.0) * forward_flops(layer, kBatch));
}

[[maybe_unused]] const bool registered = [] {
  for (std::size_t i = 0; i < std::size(kNames); ++i) {
    const std::string stem = std::string("layer/") + kNames[i];
    benchmark::RegisterBenchmark((stem + "/forward").c_str(), layer_forward, i)
        ->UseRealTime()
        ->Unit(benchmark::kMicrosecond);
    benchmark::RegisterBenchmark((stem + "/backward").c_str(), layer_backward, i)
        ->UseRealTime()
        ->Unit(benchmark::kMicrosecond);
  }
  return true;
}();

}  // namespace
