// The input pipeline's cost next to the training step it feeds (loom_bench):
//
//   data/gather/batch:32  Dataset::gather of 32 shuffled samples from 60,000
//                         28x28 images (47 MB: beyond the caches, as a real
//                         epoch reads them), bytes to floats, as fit calls it
//   augment/batch:32    augment_batch on 32 28x28x1 images: random crop after
//   augment/batch:128   padding by 2, horizontal flip, random erasing with
//                       probability 0.5 (data/augmentation.hpp), as fit applies it
//
// train/step (bench_model.cpp) is the seed model's step on a batch of 32; the
// issue's target is augmentation at most a few percent of it:
//   flock /tmp/loom-bench.lock build/bench/loom_bench --benchmark_filter='^(augment/|train/step)' \
//         --benchmark_min_time=0.3

#include <benchmark/benchmark.h>

#include <numeric>
#include <span>
#include <vector>

#include "loom/data/augmentation.hpp"
#include "loom/data/dataset.hpp"
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

void gather(benchmark::State& state) {
  const Index n = state.range(0), total = 60000;
  const Shape shape = Shape::image(28, 28, 1);
  Random rng(3);
  std::vector<std::uint8_t> bytes(static_cast<std::size_t>(total * shape.size()));
  for (std::uint8_t& b : bytes) b = static_cast<std::uint8_t>(rng.below(256));
  std::vector<std::uint8_t> labels(static_cast<std::size_t>(total));
  for (std::uint8_t& l : labels) l = static_cast<std::uint8_t>(rng.below(10));
  const Dataset data(std::move(bytes), std::move(labels), shape);
  std::vector<Index> order(static_cast<std::size_t>(total));
  std::iota(order.begin(), order.end(), Index{0});
  rng.shuffle(std::span<Index>(order));
  Tensor x;
  std::vector<Label> y(static_cast<std::size_t>(n));
  std::size_t at = 0;
  for (auto _ : state) {  // consecutive batches of one shuffled epoch, as fit takes them
    if (at + static_cast<std::size_t>(n) > order.size()) at = 0;
    data.gather(std::span<const Index>(order.data() + at, static_cast<std::size_t>(n)), x, y);
    at += static_cast<std::size_t>(n);
    benchmark::DoNotOptimize(x.data());
    benchmark::ClobberMemory();
  }
  state.counters["items_per_second"] =
      benchmark::Counter(static_cast<double>(state.iterations() * n), benchmark::Counter::kIsRate);
}

}  // namespace

BENCHMARK(gather)->Name("data/gather")->ArgName("batch")->Arg(32)->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(augment)->Name("augment")->ArgName("batch")->Arg(32)->Arg(128)->UseRealTime()->Unit(benchmark::kMicrosecond);
