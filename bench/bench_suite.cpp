// Google Benchmark cases of the benchmark suite (suite_models.hpp), on
// synthetic images (synthetic.hpp) and random labels:
//
//   suite/<model>/train/batch:B      Sequential::train_batch (forward, loss,
//                                    backward, Adam), B = the model's training batch
//   suite/<model>/predict/batch:B    Sequential::predict on B images in one
//                                    slice, B = 1, 32, 64, 256; batch:1 also
//                                    reports latency
//   suite/<model>/convI/forward      the I-th Conv2D layer's training forward and
//   suite/<model>/convI/backward     backward at the training batch, on what the
//                                    layers before it make of a synthetic batch;
//                                    those inside residual blocks too, numbered
//                                    in the order data meets them
//
// GFLOP/s follows flops.hpp (direct-equivalent matrix-product FLOPs); compare
// the conv layers with gemm/* of the same run, the T-thread GEMM peak
// (bench/suite.py does, from this program's JSON). Counters: layer_cases.hpp
// and model_cases.hpp. main() and the thread count: bench_model.cpp.
//
//   build/bench/loom_bench --benchmark_filter='^suite/vgg/'
//   build/bench/loom_bench --benchmark_filter='^(gemm/|suite/.*/conv)'

#include <map>
#include <memory>
#include <string>

#include "layer_cases.hpp"
#include "loom/loom.hpp"
#include "model_cases.hpp"
#include "suite_models.hpp"
#include "synthetic.hpp"

namespace {

using namespace loom;
using bench::SuiteModel;

constexpr std::uint64_t kWeightSeed = 42, kDataSeed = 7;

void train(benchmark::State& state, const SuiteModel& m) {
  Sequential model = m.build(kWeightSeed);
  Random rng(kDataSeed);
  const Tensor x = bench::random_images(m.train_batch, model.input_shape(), rng);
  const auto y = bench::random_labels(m.train_batch, model.num_classes(), rng);
  bench::train_step_case(state, model, x, y);
}

void predict(benchmark::State& state, const SuiteModel& m) {
  const Index n = state.range(0);
  const Sequential model = m.build(kWeightSeed);
  Random rng(kDataSeed);
  const Tensor x = bench::random_images(n, model.input_shape(), rng);
  bench::predict_case(state, model, x, n);
}

// The layer inputs of each model at its training batch, built on first use.
bench::LayerInputs& layer_inputs(const SuiteModel& m) {
  static std::map<std::string_view, std::unique_ptr<bench::LayerInputs>> fixtures;
  auto& f = fixtures[m.name];
  if (!f) f = std::make_unique<bench::LayerInputs>(m.build(kWeightSeed), m.train_batch, kDataSeed);
  return *f;
}

[[maybe_unused]] const bool registered = [] {
  for (const SuiteModel& m : bench::suite_models()) {
    const std::string stem = "suite/" + std::string(m.name);
    benchmark::RegisterBenchmark((stem + "/train/batch:" + std::to_string(m.train_batch)).c_str(), train, m)
        ->UseRealTime()
        ->Unit(benchmark::kMillisecond);
    auto* p = benchmark::RegisterBenchmark((stem + "/predict").c_str(), predict, m)->ArgName("batch");
    for (const Index b : bench::kSuiteBatches) p->Arg(b);
    p->UseRealTime()->Unit(benchmark::kMicrosecond);
    // Which layers are Conv2D needs the built model; building one is cheap.
    // Numbered in the order data meets them: a residual block's sublayers
    // right after the layer before the block (bench::timed_layers holds them
    // after the model's own layers).
    Sequential model = m.build(kWeightSeed);
    const std::vector<Layer*> layers = bench::timed_layers(model);
    int conv = 0;
    std::size_t nested = model.size();  // the index of the next block's first sublayer
    const auto add = [&](std::size_t i) {
      if (layers[i]->kind() == "Conv2D")
        bench::register_layer_cases(stem + "/conv" + std::to_string(++conv), [&m]() -> bench::LayerInputs& {
          return layer_inputs(m);
        }, i);
    };
    for (std::size_t i = 0; i < model.size(); ++i) {
      add(i);
      if (dynamic_cast<const Residual*>(layers[i]))
        for (std::size_t c = 0; c < layers[i]->children().size(); ++c) add(nested++);
    }
  }
  return true;
}();

}  // namespace
