#pragma once
// One layer's forward or backward as a Google Benchmark case, on the input the
// layers before it make of one synthetic batch: shared by the seed model's
// layer/* cases (bench_layers.cpp) and the suite's suite/<model>/conv*/ cases
// (bench_suite.cpp).
//
// "forward" is the training forward (Layer::forward: keeps what backward
// needs, activation included). "backward" is Layer::backward after one
// forward, activation derivative included; for a layer ending in softmax it
// is backward_from_logits, the path training takes with the fused softmax
// loss. The upstream gradient dy is uniform in [-0.01, 0.01).
//
// Counters (rates over wall time: register with UseRealTime, since OpenMP
// threads do the work and the main thread's CPU time would understate it):
//   items_per_second  images per second
//   GFLOP/s           matrix-product arithmetic per second (Conv2D, Dense;
//                     the convention of flops.hpp)
//   bytes_per_second  float traffic, input + output (layers without products)

#include <benchmark/benchmark.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "flops.hpp"
#include "loom/loom.hpp"
#include "synthetic.hpp"

namespace loom::bench {

// The layers the cases can time, by index: the model's own (index i is layer
// i), then the sublayers of its residual blocks, block after block, each
// block's as children() holds them (the main path, then the shortcut).
inline std::vector<Layer*> timed_layers(Sequential& m) {
  std::vector<Layer*> out;
  for (std::size_t i = 0; i < m.size(); ++i) out.push_back(&m.layer(i));
  for (std::size_t i = 0; i < m.size(); ++i)
    if (auto* block = dynamic_cast<Residual*>(&m.layer(i)))
      for (const auto& c : block->children()) out.push_back(c.get());
  return out;
}

// Whether the model's convolutions pool for the MaxPool2D after them (on by
// default once the model has paired them; Conv2D::set_pool_fusion).
inline void set_pool_fusion(Sequential& m, bool on) {
  for (std::size_t i = 0; i < m.size(); ++i)
    if (auto* conv = dynamic_cast<Conv2D*>(&m.layer(i))) conv->set_pool_fusion(on);
}

// A compiled model (so the first layer knows, as in training, that no one
// reads its input gradient), its timed_layers, and inputs[i], what layer i
// sees for one batch of random_images: a block's sublayer gets what its
// path feeds it from the block's input.
struct LayerInputs {
  Sequential model;
  Index batch;
  std::vector<Layer*> layers;
  std::vector<Tensor> inputs;

  // Each layer is timed alone: a Conv2D does not pool for the MaxPool2D
  // after it, as it does in training (Conv2D::set_pool_fusion); the pair's
  // fused pass is timed by cases of its own (bench_layers.cpp).
  LayerInputs(Sequential m, Index n, std::uint64_t data_seed) : model(std::move(m)), batch(n) {
    set_pool_fusion(model, false);
    Random rng(data_seed);
    Tensor x = random_images(n, model.input_shape(), rng);
    for (std::size_t i = 0; i < model.size(); ++i) {
      inputs.push_back(x);
      x = model.layer(i).forward(x);
    }
    for (std::size_t i = 0; i < model.size(); ++i)
      if (const auto* block = dynamic_cast<const Residual*>(&model.layer(i)))
        for (const auto path : {block->main_path(), block->shortcut_path()}) {
          Tensor h = inputs[i];
          for (const auto& c : path) {
            inputs.push_back(h);
            h = c->forward(h);
          }
        }
    layers = timed_layers(model);
  }
};

// Sets the counters shared by forward and backward; flops is per iteration.
inline void report_layer(benchmark::State& state, const Layer& layer, Index batch, double flops) {
  const auto iterations = static_cast<std::int64_t>(state.iterations());
  state.SetItemsProcessed(iterations * batch);
  if (flops > 0.0) {
    state.counters["GFLOP/s"] = benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  } else {
    const auto floats = batch * (layer.input_shape().size() + layer.output_shape().size());
    state.SetBytesProcessed(iterations * floats * static_cast<std::int64_t>(sizeof(float)));
  }
}

inline void layer_forward_case(benchmark::State& state, LayerInputs& f, std::size_t i) {
  Layer& layer = *f.layers[i];
  const Tensor& x = f.inputs[i];
  const FlushDenormals flush;  // as fit and train_batch do
  for (auto _ : state) {
    const Tensor& y = layer.forward(x);
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  report_layer(state, layer, f.batch, forward_flops_per_image(layer) * static_cast<double>(f.batch));
}

inline void layer_backward_case(benchmark::State& state, LayerInputs& f, std::size_t i) {
  Layer& layer = *f.layers[i];
  const Tensor& x = f.inputs[i];
  Random rng(2);
  const Tensor dy = random_batch(f.batch, layer.output_shape(), rng, -1e-2f, 1e-2f);
  const FlushDenormals flush;
  layer.forward(x);  // backward reads what this forward kept; it changes none of it
  const bool fused = layer.ends_with_softmax();
  for (auto _ : state) {
    const Tensor& dx = fused ? layer.backward_from_logits(dy) : layer.backward(dy);
    benchmark::DoNotOptimize(dx.data());
    benchmark::ClobberMemory();
  }
  report_layer(state, layer, f.batch, backward_flops_per_image(layer) * static_cast<double>(f.batch));
}

// Registers <stem>/forward and <stem>/backward of timed layer i of the fixture that
// fixture() returns (built on first use: benchmarks run one at a time).
inline void register_layer_cases(const std::string& stem, const std::function<LayerInputs&()>& fixture,
                                 std::size_t i) {
  benchmark::RegisterBenchmark((stem + "/forward").c_str(),
                               [=](benchmark::State& s) { layer_forward_case(s, fixture(), i); })
      ->UseRealTime()
      ->Unit(benchmark::kMicrosecond);
  benchmark::RegisterBenchmark((stem + "/backward").c_str(),
                               [=](benchmark::State& s) { layer_backward_case(s, fixture(), i); })
      ->UseRealTime()
      ->Unit(benchmark::kMicrosecond);
}

}  // namespace loom::bench
