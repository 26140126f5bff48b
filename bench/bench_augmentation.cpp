// Data augmentation's cost next to the training step it feeds (loom_bench):
//
//   augment/batch:32    augment_batch on 32 28x28x1 images: random crop after
//   augment/batch:128   padding by 2, horizontal flip, random erasing with
//                       probability 0.5 (data/augmentation.hpp), as fit applies it
//
// train/step (bench_model.cpp) is the seed model's step on a batch of 32; the
// issue's target is augmentation at most a few percent of it:
//   flock /tmp/loom-bench.lock build/bench/loom_bench --benchmark_filter='^(augment/|train/step)' \
//         --benchmark_min_time=0.3

#include <benchmark/benchmark.h>

#include "loom/data/augmentation.hpp"
#include "synthetic.hpp"

namespace {

using namespace loom;

void augment(benchmark::State& state) {
  const Index n = state.range(0);
  Random rng(1);
  const Tensor images = bench::random_images(n, Shape::image(28, 28, 1), rng);
  const AugmentationOptions o{.pad = 2, .horizontal_flip = true, .erasing = 0.5f};
  Tensor x = images;
  Index batch = 0;
  for (auto _ : state) {
    // Augmenting the augmented batch again costs the same: no copy inside the loop.
    augment_batch(x, o, {.seed = 7, .epoch = 1, .batch = batch++});
    benchmark::DoNotOptimize(x.data());
    benchmark::ClobberMemory();
  }
  state.counters["items_per_second"] =
      benchmark::Counter(static_cast<double>(state.iterations() * n), benchmark::Counter::kIsRate);
}

}  // namespace

BENCHMARK(augment)->Name("augment")->ArgName("batch")->Arg(32)->Arg(128)->UseRealTime()->Unit(benchmark::kMicrosecond);
