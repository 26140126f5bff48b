// BatchNormalization, and what folding it into the convolutions saves in inference.
//
//   batch_norm/layer/{forward,backward}  BatchNormalization on (16, 16, 64),
//                                        batch 32, in training mode: batch
//                                        statistics and the moving update, then
//                                        the full gradient through the statistics
//   batch_norm/layer/infer               the same layer's inference (moving statistics)
//   batch_norm/stem_relu/{forward,backward}  the best recipe's stem pair:
//                                        BatchNormalization and the ReLU after
//                                        it, trained as one pass (28x28x32,
//                                        batch 128), on its Conv2D's output,
//                                        dx included
//   batch_norm/predict/{unfolded,folded} Sequential::predict of 256 images (32, 32, 3)
//                                        through a small conv-BN-ReLU model, and
//                                        through loom::fold_batch_norm of it
//   batch_norm/predict/unfolded_pools_apart  the unfolded model with its
//                                        convolutions not pooling for the
//                                        MaxPool2D after them (set_pool_fusion):
//                                        what running each block conv - BN -
//                                        ReLU - max pool as one step saves
//   batch_norm/resnet_predict/{unfolded,folded}  the same for the best recipe's
//                                        ResNet (models::fashion_mnist_best), 256
//                                        images of 28x28 in one call: folding
//                                        reaches inside its residual blocks
//
// The model: Conv2D 32 3x3 same -> BatchNormalization -> ReLU -> MaxPool2D ->
// Conv2D 64 3x3 same -> BatchNormalization -> ReLU -> MaxPool2D -> Flatten ->
// Dense 10 softmax; its moving statistics come from a few training forwards.
//
//   flock /tmp/loom-bench.lock build/bench/loom_bench --threads=2 --benchmark_filter='^batch_norm/' \
//     --benchmark_repetitions=3 --benchmark_report_aggregates_only=true
//
// Measured 2026-12-01 on the shared 2-core development machine (medians of 3):
//   threads  layer forward  backward  infer   predict unfolded  folded   ratio
//   2        107 us         98 us     33 us   35.4 ms           11.0 ms  3.2x
//   1        183 us         172 us    59 us   267 ms            22.7 ms  11.8x
// Most of the unfolded model's extra time is not BatchNormalization's
// arithmetic (59 us per 32 images of 16x16x64 above) but page faults:
// predict's two scratch tensors per thread are resized at each layer, and
// with glibc's defaults the large ones come back as fresh pages each time;
// the unfolded model has four more layers to resize for. With
// MALLOC_MMAP_THRESHOLD_=1000000000 MALLOC_TRIM_THRESHOLD_=1000000000 (memory
// kept by the allocator), one thread gave 27.5 ms unfolded and 24.1 ms folded
// (1.14x): what folding saves in arithmetic alone. Giving each layer a
// scratch tensor of its own, kept across a predict's slices, so that nothing
// is reallocated, was tried and was slower, not faster: unfolded 55-72 ms
// against 26-37 ms with the two alternating tensors (3 alternating runs, 2
// threads, 2026-12-01), likely its larger footprint in cache; it was not kept.
// Since 2026-12-02 loom keeps freed memory itself (loom/freed_memory.hpp), so
// the page faults above are gone from both models: 11.6 ms unfolded, 10.6 ms
// folded (2 threads, medians of 3). The ResNet: 22.7 ms unfolded, 22.9 ms
// folded in that run, 25.9 and 18.8 ms (medians of 5) in the next: this host's
// noise is as large as what folding saves there.
//
// Threads and JSON output: see the top of bench_model.cpp, which holds main().

#include <string>

#include "layer_cases.hpp"
#include "loom/loom.hpp"
#include "loom/models/fashion_mnist_best.hpp"
#include "model_cases.hpp"
#include "synthetic.hpp"

namespace {

using namespace loom;

bench::LayerInputs& layer_inputs() {
  static bench::LayerInputs f = [] {
    Sequential m(Shape{16, 16, 64}, 1);
    m.add(BatchNormalization());
    return bench::LayerInputs(std::move(m), 32, 1);
  }();
  return f;
}

// Conv2D 32 3x3 same - BatchNormalization - ReLU on 28x28 grey images, the
// recipe ResNet's stem, then a head so that the model compiles as in
// training: the pair trains as one pass and, not being the model's first
// layer, the BatchNormalization computes dx.
bench::LayerInputs& stem_inputs() {
  static bench::LayerInputs f = [] {
    Sequential m(Shape{28, 28, 1}, 1);
    m.add(Conv2D({.filters = 32, .kernel = 3, .padding = Padding::Same}));
    m.add(BatchNormalization());
    m.add(ReLU());
    m.add(GlobalAveragePooling2D());  // a classifier head, for compile
    m.add(Dense({.units = 10, .activation = Activation::Softmax}));
    m.compile(Adam());
    return bench::LayerInputs(std::move(m), 128, 1);
  }();
  return f;
}

// A model with BatchNormalization, its moving statistics moved by a few
// training forwards, and loom::fold_batch_norm of it, on 256 random images.
struct PredictModels {
  Sequential unfolded;
  Sequential folded;
  Tensor x;

  explicit PredictModels(Sequential model) : unfolded(std::move(model)), folded(unfolded.input_shape()) {
    Random rng(3);
    x = bench::random_images(256, unfolded.input_shape(), rng);
    for (int i = 0; i < 3; ++i) unfolded.forward(x);  // moving statistics away from their start
    folded = fold_batch_norm(unfolded);
  }
};

Sequential conv_bn_relu_model() {
  Sequential m(Shape{32, 32, 3}, 7);
  for (const Index filters : {32, 64}) {
    m.add(Conv2D({.filters = filters, .kernel = 3, .padding = Padding::Same}));
    m.add(BatchNormalization());
    m.add(ReLU());
    m.add(MaxPool2D());
  }
  m.add(Flatten());
  m.add(Dense({.units = 10, .activation = Activation::Softmax}));
  m.compile(Adam());
  return m;
}

PredictModels& predict_models() {
  static PredictModels m(conv_bn_relu_model());
  return m;
}

PredictModels& resnet_models() {
  static PredictModels m(models::fashion_mnist_best(42, 60000));
  return m;
}

[[maybe_unused]] const bool registered = [] {
  bench::register_layer_cases("batch_norm/layer", layer_inputs, 0);
  bench::register_layer_cases("batch_norm/stem_relu", stem_inputs, 1);
  benchmark::RegisterBenchmark("batch_norm/layer/infer",
                               [](benchmark::State& state) {
                                 const bench::LayerInputs& f = layer_inputs();
                                 const Layer& bn = f.model.layer(0);
                                 Tensor y;
                                 const FlushDenormals flush;
                                 for (auto _ : state) {
                                   bn.infer(f.inputs[0], y);
                                   benchmark::DoNotOptimize(y.data());
                                   benchmark::ClobberMemory();
                                 }
                                 bench::report_layer(state, bn, f.batch, 0.0);
                               })
      ->UseRealTime()
      ->Unit(benchmark::kMicrosecond);
  struct Case {
    const char* name;
    PredictModels& (*models)();
    Index batch_size;  // predict's batch
  };
  for (const Case c : {Case{"batch_norm/predict", predict_models, 32}, Case{"batch_norm/resnet_predict", resnet_models, 256}})
    for (const bool fold : {false, true})
      benchmark::RegisterBenchmark((std::string(c.name) + (fold ? "/folded" : "/unfolded")).c_str(),
                                   [c, fold](benchmark::State& state) {
                                     PredictModels& m = c.models();
                                     bench::predict_case(state, fold ? m.folded : m.unfolded, m.x, c.batch_size);
                                   })
          ->UseRealTime()
          ->Unit(benchmark::kMicrosecond);
  benchmark::RegisterBenchmark("batch_norm/predict/unfolded_pools_apart",
                               [](benchmark::State& state) {
                                 PredictModels& m = predict_models();
                                 bench::set_pool_fusion(m.unfolded, false);
                                 bench::predict_case(state, m.unfolded, m.x, 32);
                                 bench::set_pool_fusion(m.unfolded, true);
                               })
      ->UseRealTime()
      ->Unit(benchmark::kMicrosecond);
  return true;
}();

}  // namespace
