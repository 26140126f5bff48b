#pragma once
// Whole-model Google Benchmark cases, shared by the seed model's train/step and
// predict/* (bench_model.cpp) and the suite's suite/<model>/train and
// suite/<model>/predict (bench_suite.cpp).
//
// Counters (over wall time: register with UseRealTime): items_per_second
// (images), GFLOP/s (flops.hpp's convention: a training step counts the
// forward products plus dW for every layer plus dX for every layer that
// computes it), and for a batch of one image, latency (seconds per call).

#include <benchmark/benchmark.h>

#include <cstdint>
#include <span>

#include "flops.hpp"
#include "loom/loom.hpp"

namespace loom::bench {

inline void set_rates(benchmark::State& state, Index images_per_iteration, double flops_per_iteration) {
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) * images_per_iteration);
  if (flops_per_iteration > 0.0)
    state.counters["GFLOP/s"] =
        benchmark::Counter(flops_per_iteration * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

// Sequential::train_batch (forward, fused softmax cross-entropy, backward,
// Adam) on the same batch every iteration.
inline void train_step_case(benchmark::State& state, Sequential& model, const Tensor& x,
                            std::span<const Label> y) {
  for (auto _ : state) {
    const BatchScore s = model.train_batch(x, y);
    benchmark::DoNotOptimize(s);
    benchmark::ClobberMemory();
  }
  const Index n = x.dimension(0);
  set_rates(state, n, (forward_flops_per_image(model) + backward_flops_per_image(model)) * static_cast<double>(n));
}

// Sequential::predict(x, slice): all of x, in slices of `slice` images.
inline void predict_case(benchmark::State& state, const Sequential& model, const Tensor& x, Index slice) {
  benchmark::DoNotOptimize(model.predict(x, slice).data());  // warm-up, outside the timing
  for (auto _ : state) {
    Tensor p = model.predict(x, slice);
    benchmark::DoNotOptimize(p.data());
    benchmark::ClobberMemory();
  }
  const Index n = x.dimension(0);
  set_rates(state, n, forward_flops_per_image(model) * static_cast<double>(n));
  if (n == 1)  // seconds per call (iterations per second, inverted); the console shows e.g. "latency=152us"
    state.counters["latency"] =
        benchmark::Counter(1.0, benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
}

}  // namespace loom::bench
