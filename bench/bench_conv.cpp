// The convolution engine's algorithms side by side, at the 3x3 shapes of the
// benchmark suite's models, on random data:
//
//   conv/<shape>/<algorithm>/forward    Conv2D::forward (training: keeps what backward needs)
//   conv/<shape>/<algorithm>/backward   Conv2D::backward (dW, db and dx)
//
// with <algorithm> im2col, winograd2x2 or winograd4x4, each forced with
// Conv2DOptions::algorithm, and <shape> named after the model layer it comes
// from (N x H x W x C -> F, 3x3, stride 1 unless the name says otherwise:
// _s2 3x3 stride 2, _1x1s2 1x1 stride 2; an algorithm that cannot compute a
// shape is left out). GFLOP/s counts the direct
// convolution's arithmetic (2 * N*OH*OW * 9*C * F per product; backward is two
// such products), whatever the algorithm really does: Winograd above the
// GEMM peak (gemm/*) means it saved more arithmetic than its transforms
// cost. The choice rule in conv/conv_algorithm.hpp is read off these numbers:
//
//   build/bench/loom_bench --benchmark_filter='^conv/'
//
// Threads and JSON output: see the top of bench_model.cpp, which holds main().

#include <benchmark/benchmark.h>

#include <string>

#include "flops.hpp"
#include "loom/loom.hpp"
#include "synthetic.hpp"

namespace {

using namespace loom;

struct ConvShape {
  const char* name;
  Index n, h, w, c, f;
  Index kernel = 3, stride = 1;
};

// 3x3, stride 1, same padding unless the name says valid.
const ConvShape kShapes[] = {
    {"seed_conv2_valid", 32, 13, 13, 32, 64},  // the seed model's conv2
    {"vgg_32x32x32_32", 64, 32, 32, 32, 32},   {"vgg_16x16x32_64", 64, 16, 16, 32, 64},
    {"vgg_16x16x64_64", 64, 16, 16, 64, 64},   {"photo_24x24x32_64", 32, 24, 24, 32, 64},
    {"photo_12x12x64_128", 32, 12, 12, 64, 128}, {"wide_16x16x128_256", 32, 16, 16, 128, 256},
    {"wide_16x16x256_256", 32, 16, 16, 256, 256}, {"odd_32x32x24_40", 64, 32, 32, 24, 40},
    {"odd_16x16x40_72", 64, 16, 16, 40, 72},
    // the best recipe's ResNet (suite model "resnet"), batch 128
    {"resnet_14x14x32_32", 128, 14, 14, 32, 32}, {"resnet_7x7x64_64", 128, 7, 7, 64, 64},
    {"resnet_4x4x128_128", 128, 4, 4, 128, 128},
    // its strided layers, which only im2col computes: each block's first 3x3
    // convolution and its 1x1 projection shortcut, stride 2
    {"resnet_28x28x32_32_s2", 128, 28, 28, 32, 32, 3, 2}, {"resnet_14x14x32_64_s2", 128, 14, 14, 32, 64, 3, 2},
    {"resnet_7x7x64_128_s2", 128, 7, 7, 64, 128, 3, 2}, {"resnet_28x28x32_32_1x1s2", 128, 28, 28, 32, 32, 1, 2},
    {"resnet_14x14x32_64_1x1s2", 128, 14, 14, 32, 64, 1, 2}, {"resnet_7x7x64_128_1x1s2", 128, 7, 7, 64, 128, 1, 2},
};

const ConvAlgorithm kAlgorithms[] = {ConvAlgorithm::Im2col, ConvAlgorithm::Winograd2, ConvAlgorithm::Winograd4};

struct Setup {
  Conv2D conv;
  Tensor x, dy;
  Setup(const ConvShape& s, ConvAlgorithm a)
      : conv({.filters = s.f,
              .kernel = s.kernel,
              .strides = s.stride,
              .padding = std::string(s.name).ends_with("valid") ? Padding::Valid : Padding::Same,
              .activation = Activation::ReLU,
              .algorithm = a}) {
    Random rng(1);
    conv.build(Shape{s.h, s.w, s.c}, rng);
    x = bench::random_images(s.n, conv.input_shape(), rng);
    dy = bench::random_batch(s.n, conv.output_shape(), rng, -1e-2f, 1e-2f);
  }
  double flops() const { return double(x.dimension(0)) * bench::forward_flops_per_image(conv); }
};

void report(benchmark::State& state, const Setup& s, double flops) {
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) * s.x.dimension(0));
  state.counters["GFLOP/s"] = benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

void conv_forward(benchmark::State& state, ConvShape shape, ConvAlgorithm a) {
  Setup s(shape, a);
  const FlushDenormals flush;
  for (auto _ : state) {
    benchmark::DoNotOptimize(s.conv.forward(s.x).data());
    benchmark::ClobberMemory();
  }
  report(state, s, s.flops());
}

void conv_backward(benchmark::State& state, ConvShape shape, ConvAlgorithm a) {
  Setup s(shape, a);
  const FlushDenormals flush;
  s.conv.forward(s.x);
  for (auto _ : state) {
    benchmark::DoNotOptimize(s.conv.backward(s.dy).data());
    benchmark::ClobberMemory();
  }
  report(state, s, 2.0 * s.flops());
}

[[maybe_unused]] const bool registered = [] {
  for (const ConvShape& s : kShapes) {
    // The kernel and strides are all the rule looks at (strided: im2col only).
    const conv::ConvGeometry g{.kh = s.kernel, .kw = s.kernel, .sh = s.stride, .sw = s.stride};
    for (ConvAlgorithm a : kAlgorithms) {
      if (!conv::unsupported_reason(a, g, true).empty()) continue;
      const std::string stem = std::string("conv/") + s.name + "/" + std::string(to_string(a));
      benchmark::RegisterBenchmark((stem + "/forward").c_str(), conv_forward, s, a)
          ->UseRealTime()
          ->Unit(benchmark::kMillisecond);
      benchmark::RegisterBenchmark((stem + "/backward").c_str(), conv_backward, s, a)
          ->UseRealTime()
          ->Unit(benchmark::kMillisecond);
    }
  }
  return true;
}();

}  // namespace
