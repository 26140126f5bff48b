// Whole-model microbenchmarks of the seed Fashion-MNIST CNN, a plain Eigen
// matrix product as the machine's reference peak, and main() of loom_bench.
// (The suite's models, suite/*: bench_suite.cpp.)
//
//   train/step       Sequential::train_batch on a batch of 32 (forward, fused
//                    softmax cross-entropy, backward, Adam)
//   train/forward    Sequential::forward alone, batch 32
//   train/backward   Sequential::loss_and_backward alone, batch 32
//   train/adam       Sequential::step alone (Adam over all 225,034 parameters)
//   train/non_finite_check  the check fit makes after every batch (loss and
//                    every gradient finite?), on a healthy batch: its cost
//                    next to train/step
//   predict/batch:1     Sequential::predict on one image; real_time and the
//                       latency counter (seconds in JSON) are the single-image latency
//   predict/batch:1000  Sequential::predict on 1,000 images
//   gemm/S           C = A B for S x S float matrices (2*S^3 FLOP) with
//                    loom::gemm::parallel_multiply (loom/gemm.hpp) over the
//                    T OpenMP threads: the T-thread peak of this machine, in
//                    this run, and the "% of peak" reference
//   gemm1t/S         the same product on one thread (loom::gemm::multiply)
//   eigen/gemm1t/S   the same product as ONE single-threaded Eigen product
//                    (the library defines EIGEN_DONT_PARALLELIZE), for comparison
//   gemm/shape/M/K/N, gemm_bf16/shape/M/K/N  C (M x N) = A (M x K) B over
//                    the T threads, in float (gemm::parallel_multiply) and in
//                    bfloat16 with float sums (gemm::bf16::parallel_multiply,
//                    loom/gemm_bf16.hpp: rounding and packing both operands
//                    included), at the products of the recipe ResNet's strided
//                    3x3 layers at batch 128 (patches x kernel), a Winograd
//                    chunk's product at its stride-1 layers, and 1024^2:
//                    what bfloat16 would give a layer before any other change
//   gemm/shape_at/M/K/N, gemm_bf16/shape_at/M/K/N  the same with A stored
//                    transposed: the layers' weight gradients colᵀ dZ (patches
//                    written out) and a Winograd chunk's Vᵀ dM
//   gemm/gathered/H/C/F, gemm_bf16/gathered/H/C/F  the same layers' forward
//                    products as the convolution makes them, A read through a
//                    row table over 128 HxHxC images (3x3, stride 2, same);
//                    gemm_bf16/gathered_runs/H/C/F with the images rounded to
//                    bfloat16 beforehand (outside the time), as a layer that
//                    wrote its output in bfloat16 would leave them
//   gemm/gathered_at/H/C/F, gemm_bf16/gathered_at/H/C/F  the same layers'
//                    weight gradients colᵀ dZ as the convolution makes them:
//                    the patches through the row table, chunk by chunk of
//                    samples into partials, one thread a chunk
//                    (gemm::multiply_transposed, gemm::bf16::multiply_transposed)
//   gemm1t/narrow/M/K/N  C (M x N) = A (M x K) B on one thread, for the
//                    narrow products of real layers: filters 40, 72, 100, 10
//                    (a last panel a quarter full or less), 24 and 64 (full)
//   peak/fma         independent FMA chains on each of the T threads, no
//                    memory traffic: the most floating-point work these cores
//                    can do (2 FLOP per lane per FMA), the ceiling above any
//                    product; a target that needs more than it cannot be met
//                    by doing the same FLOPs faster
//   peak/bf16_dot    the same with AVX512-BF16's dot products (vdpbf16ps: per
//                    float lane, two bfloat16 products added to a float sum,
//                    4 FLOP), where the build targets them: the ceiling of a
//                    product in bfloat16 with float sums, beside peak/fma's
//   eigen/shape/...  one single-threaded Eigen product at each exact shape of
//                    the seed model's convolution and dense products (whole
//                    batch of 32, one product per matrix): what one thread of
//                    Eigen reaches at that shape
//
// Inputs are synthetic (loom::Random): images of max(0, uniform(-1, 1))
// pixels, about half zeros like Fashion-MNIST, and random labels, so no data
// files are needed.
//
// Threads. loom_bench calls loom::set_threads(T) once, before any benchmark:
//   T = --threads=N (or --threads N) on the command line, else
//       $LOOM_BENCH_THREADS, else 2.
// T is recorded in the JSON context as "loom_threads".
//   LOOM_BENCH_THREADS=1 build/bench/loom_bench
//   build/bench/loom_bench --threads=2 --benchmark_filter='^layer/conv'
//
// JSON. Google Benchmark's own flags:
//   build/bench/loom_bench --benchmark_format=json > out.json
//   build/bench/loom_bench --benchmark_out=out.json --benchmark_out_format=json
// (the second keeps the console table on stdout as well). On a noisy machine,
// add --benchmark_repetitions=5 --benchmark_report_aggregates_only=true for
// mean, median and standard deviation per benchmark.
//
// Counters: items_per_second (images), GFLOP/s (matrix products only, each
// 2*M*N*K; a training step counts the forward products plus dW for every
// layer plus dX for every layer that computes it, i.e. all but the first;
// see flops.hpp), and for
// predict/batch:1 latency (seconds per call). Every rate is over wall time (UseRealTime).

#include <benchmark/benchmark.h>
#include <omp.h>

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#endif

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

#include "loom/loom.hpp"
#include "loom/gemm.hpp"
#include "loom/conv/im2col_conv.hpp"
#include "loom/gemm_bf16.hpp"
#include "model_cases.hpp"
#include "synthetic.hpp"

namespace {

using namespace loom;

constexpr Index kBatch = 32;
const Shape kInput{28, 28, 1};

using bench::backward_flops_per_image;
using bench::forward_flops_per_image;
using bench::set_rates;

// ---- training ---------------------------------------------------------------

// The seed CNN and one batch of random images and labels, the same in every
// training benchmark.
struct SeedBatch {
  Sequential model;
  Tensor x;
  std::vector<Label> y;
};

SeedBatch seed_batch() {
  Random rng(7);
  Tensor x = bench::random_images(kBatch, kInput, rng);  // images first, then labels: the data stays as it was
  return {models::fashion_mnist_cnn(42), std::move(x), bench::random_labels(kBatch, 10, rng)};
}

void train_step(benchmark::State& state) {
  auto [model, x, y] = seed_batch();
  bench::train_step_case(state, model, x, y);
}

void train_forward(benchmark::State& state) {
  auto [model, x, y] = seed_batch();
  const FlushDenormals flush;  // as train_batch does
  for (auto _ : state) {
    const Tensor& out = model.forward(x);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  set_rates(state, kBatch, forward_flops_per_image(model) * kBatch);
}

void train_backward(benchmark::State& state) {
  auto [model, x, y] = seed_batch();
  const FlushDenormals flush;
  model.forward(x);  // loss_and_backward reads what forward kept and changes none of it
  for (auto _ : state) {
    const BatchScore s = model.loss_and_backward(y);
    benchmark::DoNotOptimize(s);
    benchmark::ClobberMemory();
  }
  set_rates(state, kBatch, backward_flops_per_image(model) * kBatch);
}

void train_adam(benchmark::State& state) {
  auto [model, x, y] = seed_batch();
  const FlushDenormals flush;
  model.forward(x);
  model.loss_and_backward(y);
  for (auto _ : state) {
    model.step();
    benchmark::ClobberMemory();
  }
  set_rates(state, kBatch, 0.0);
  // Adam reads w, g, m, v and writes w, m, v: 7 floats per parameter.
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * model.param_count() * 7 *
                          static_cast<std::int64_t>(sizeof(float)));
}

void train_non_finite_check(benchmark::State& state) {
  auto [model, x, y] = seed_batch();
  const FlushDenormals flush;
  model.forward(x);
  const BatchScore s = model.loss_and_backward(y);
  for (auto _ : state) {
    const std::string where = model.non_finite_in_last_batch(x, s);
    benchmark::DoNotOptimize(where.data());
  }
  set_rates(state, kBatch, 0.0);
}

// ---- inference --------------------------------------------------------------

void predict(benchmark::State& state) {
  const Index n = state.range(0);
  Random rng(7);
  const Sequential model = models::fashion_mnist_cnn(42);
  const Tensor x = bench::random_images(n, kInput, rng);
  bench::predict_case(state, model, x, 32);  // predict's default slices of 32, as loom_reference
}

// ---- the hardware reference: plain Eigen products ---------------------------

RowMatrix random_matrix(Index rows, Index cols, Random& rng) {
  RowMatrix m(rows, cols);
  for (Index i = 0; i < m.size(); ++i) m.data()[i] = rng.uniform(-1.0f, 1.0f);
  return m;
}

// C = A B, S x S, with loom's product on T threads or one, or with Eigen's.
enum class Gemm { Threaded, OneThread, Eigen };
void square_gemm(benchmark::State& state, Gemm how) {
  const Index s = state.range(0);
  Random rng(3);
  const RowMatrix a = random_matrix(s, s, rng), b = random_matrix(s, s, rng);
  RowMatrix c(s, s);
  for (auto _ : state) {
    if (how == Gemm::Threaded)
      gemm::parallel_multiply(gemm::mutable_view(c), gemm::view(a), gemm::view(b));
    else if (how == Gemm::OneThread)
      gemm::multiply(gemm::mutable_view(c), gemm::view(a), gemm::view(b));
    else
      c.noalias() = a * b;
    benchmark::DoNotOptimize(c.data());
    benchmark::ClobberMemory();
  }
  state.counters["GFLOP/s"] = benchmark::Counter(2.0 * static_cast<double>(s) * static_cast<double>(s) *
                                                     static_cast<double>(s) * 1e-9,
                                                 benchmark::Counter::kIsIterationInvariantRate);
}

// peak/fma: independent chains of FMAs on every thread (independent_chains
// below), for a fixed count per iteration, in the widest
// vectors the build targets (16 lanes with AVX-512, which loom's product
// uses; 8 with AVX2: an 8-lane ceiling on an AVX-512 machine is half the real one).
#if defined(__AVX512F__)
using FmaVector = __m512;
constexpr int kFmaLanes = 16;
inline FmaVector fma_set1(float v) { return _mm512_set1_ps(v); }
inline FmaVector fma_madd(FmaVector a, FmaVector b, FmaVector c) { return _mm512_fmadd_ps(a, b, c); }
inline float fma_lane0(FmaVector v) { return _mm512_cvtss_f32(v); }
#elif defined(__AVX2__) && defined(__FMA__)
using FmaVector = __m256;
constexpr int kFmaLanes = 8;
inline FmaVector fma_set1(float v) { return _mm256_set1_ps(v); }
inline FmaVector fma_madd(FmaVector a, FmaVector b, FmaVector c) { return _mm256_fmadd_ps(a, b, c); }
inline float fma_lane0(FmaVector v) { return _mm256_cvtss_f32(v); }
#endif

// The ceiling loop of peak/fma and peak/bf16_dot: on every thread, 12
// independent chains (enough to hide the latency on two pipes) of
// acc = step(acc) for a fixed count, started at start(i); one lane of each
// chain goes into a sink so that no chain can be dropped. Reports
// flop_per_step of each step as GFLOP/s.
constexpr int kPeakChains = 12;
constexpr long kPeakRounds = 1 << 18;  // about 0.5 ms: the parallel region's start is noise
template <class Vector, class Start, class Step, class Lane0>
void independent_chains(benchmark::State& state, double flop_per_step, Start start, Step step, Lane0 lane0) {
  const int threads = omp_get_max_threads();
  float sink = 0.0f;
  for (auto _ : state) {
#pragma omp parallel reduction(+ : sink)
    {
      Vector acc[kPeakChains];
      for (int i = 0; i < kPeakChains; ++i) acc[i] = start(i);
      for (long r = 0; r < kPeakRounds; ++r)
        for (int i = 0; i < kPeakChains; ++i) acc[i] = step(acc[i]);
      for (int i = 0; i < kPeakChains; ++i) sink += lane0(acc[i]);
    }
    benchmark::DoNotOptimize(sink);
  }
  state.counters["GFLOP/s"] =
      benchmark::Counter(static_cast<double>(threads) * kPeakRounds * kPeakChains * flop_per_step * 1e-9,
                         benchmark::Counter::kIsIterationInvariantRate);
}

void fma_peak(benchmark::State& state) {
#if defined(__AVX2__) && defined(__FMA__)
  const FmaVector mul = fma_set1(0.9999999f), add = fma_set1(1e-8f);
  independent_chains<FmaVector>(
      state, kFmaLanes * 2, [](int i) { return fma_set1(1.0f + 1e-7f * static_cast<float>(i)); },
      [&](FmaVector acc) { return fma_madd(acc, mul, add); }, fma_lane0);
#else
  state.SkipWithError("needs AVX2 and FMA");
#endif
}

// peak/bf16_dot: the same chains, each step a vdpbf16ps (16 float sums, each
// += two bfloat16 products: 4 FLOP a lane). Skipped where the build does not
// target AVX512-BF16.
void bf16_dot_peak(benchmark::State& state) {
#if defined(__AVX512BF16__)
  // pairs (1, 1) and (2^-20, 1): each step adds 1 + 2^-20 to a lane, exactly, for all 2^18 steps
  const __m512bh ones = _mm512_cvtne2ps_pbh(_mm512_set1_ps(1.0f), _mm512_set1_ps(1.0f));
  const __m512bh tiny = _mm512_cvtne2ps_pbh(_mm512_set1_ps(1.0f / 1048576.0f), _mm512_set1_ps(1.0f));
  independent_chains<__m512>(
      state, 16 * 4, [](int i) { return _mm512_set1_ps(1.0f + 1e-7f * static_cast<float>(i)); },
      [&](__m512 acc) { return _mm512_dpbf16_ps(acc, ones, tiny); }, [](__m512 v) { return _mm512_cvtss_f32(v); });
#else
  state.SkipWithError("needs AVX512-BF16");
#endif
}

// C (M, N) = op(A) op(B) with inner dimension K, where op transposes as the
// layer's math does (Conv2D: Z = col W, dW = col^T dZ, dcol = dZ W^T; Dense
// alike), each as ONE single-threaded Eigen product over the whole batch of
// 32, whatever --threads says. (conv1 has no dX: training skips the first
// layer's input gradient.) A layer on T threads can at best reach about T
// times these; one that works in chunks of samples does several smaller
// products instead, and may beat them.
struct ProductShape {
  const char* name;
  Index m, k, n;
  bool transpose_a, transpose_b;
};

const ProductShape kShapes[] = {
    {"conv1_forward", 32 * 26 * 26, 9, 32, false, false},
    {"conv1_dW", 9, 32 * 26 * 26, 32, true, false},
    {"conv2_forward", 32 * 11 * 11, 288, 64, false, false},
    {"conv2_dW", 288, 32 * 11 * 11, 64, true, false},
    {"conv2_dX", 32 * 11 * 11, 64, 288, false, true},
    {"dense1_forward", 32, 1600, 128, false, false},
    {"dense1_dW", 1600, 32, 128, true, false},
    {"dense1_dX", 32, 128, 1600, false, true},
};

void eigen_shape(benchmark::State& state, const ProductShape& p) {
  Random rng(3);
  // Stored as the layer stores them: A is (K, M) when used transposed, B is (N, K).
  const RowMatrix a = p.transpose_a ? random_matrix(p.k, p.m, rng) : random_matrix(p.m, p.k, rng);
  const RowMatrix b = p.transpose_b ? random_matrix(p.n, p.k, rng) : random_matrix(p.k, p.n, rng);
  RowMatrix c(p.m, p.n);
  for (auto _ : state) {
    if (p.transpose_a)
      c.noalias() = a.transpose() * b;
    else if (p.transpose_b)
      c.noalias() = a * b.transpose();
    else
      c.noalias() = a * b;
    benchmark::DoNotOptimize(c.data());
    benchmark::ClobberMemory();
  }
  state.counters["GFLOP/s"] = benchmark::Counter(
      2.0 * static_cast<double>(p.m) * static_cast<double>(p.k) * static_cast<double>(p.n) * 1e-9,
      benchmark::Counter::kIsIterationInvariantRate);
}

BENCHMARK(train_step)->Name("train/step")->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(train_forward)->Name("train/forward")->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(train_backward)->Name("train/backward")->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(train_adam)->Name("train/adam")->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(train_non_finite_check)->Name("train/non_finite_check")->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(predict)->Name("predict")->ArgName("batch")->Arg(1)->Arg(1000)->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(fma_peak)->Name("peak/fma")->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(bf16_dot_peak)->Name("peak/bf16_dot")->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(square_gemm, threaded, Gemm::Threaded)
    ->Name("gemm")
    ->Arg(1024)
    ->Arg(2048)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(square_gemm, one_thread, Gemm::OneThread)
    ->Name("gemm1t")
    ->Arg(1024)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
// C (M x N) = A (M x K) B (K x N): in float on one thread or over the
// threads, or in bfloat16 over the threads.
// With a_transposed, A is stored as Aᵀ (a weight gradient's colᵀ or Vᵀ).
enum class Product { FloatOneThread, Float, Bf16 };
void shape_gemm(benchmark::State& state, Product how, bool a_transposed = false) {
  const Index m = state.range(0), k = state.range(1), n = state.range(2);
  Random rng(3);
  const RowMatrix stored = a_transposed ? random_matrix(k, m, rng) : random_matrix(m, k, rng), b = random_matrix(k, n, rng);
  const gemm::ConstView a = a_transposed ? gemm::view(stored.transpose()) : gemm::view(stored);
  RowMatrix c(m, n);
  for (auto _ : state) {
    if (how == Product::FloatOneThread)
      gemm::multiply(gemm::mutable_view(c), a, gemm::view(b));
    else if (how == Product::Float)
      gemm::parallel_multiply(gemm::mutable_view(c), a, gemm::view(b));
    else
      gemm::bf16::parallel_multiply(gemm::mutable_view(c), a, gemm::view(b));
    benchmark::DoNotOptimize(c.data());
    benchmark::ClobberMemory();
  }
  state.counters["GFLOP/s"] = benchmark::Counter(
      2.0 * static_cast<double>(m) * static_cast<double>(k) * static_cast<double>(n) * 1e-9,
      benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK_CAPTURE(shape_gemm, narrow, Product::FloatOneThread)
    ->Name("gemm1t/narrow")
    ->Args({4096, 216, 40})
    ->Args({4096, 216, 72})
    ->Args({4096, 360, 24})
    ->Args({4096, 216, 64})
    ->Args({256, 1600, 100})
    ->Args({256, 512, 10})
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);
// the recipe ResNet's strided 3x3 layers at batch 128: 28x28x32 -> 14x14x32,
// 14x14x32 -> 7x7x64, 7x7x64 -> 4x4x128; then one of the 36 products of a
// Winograd chunk of 128 tiles at its three stride-1 layers (too small for a
// team: one thread, as the chunks run); then a square
void gemm_shapes(benchmark::internal::Benchmark* b) {
  b->Args({25088, 288, 32})->Args({6272, 288, 64})->Args({2048, 576, 128});
  b->Args({128, 32, 32})->Args({128, 64, 64})->Args({128, 128, 128})->Args({1024, 1024, 1024});
}
BENCHMARK_CAPTURE(shape_gemm, float, Product::Float)->Name("gemm/shape")->Apply(gemm_shapes)->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(shape_gemm, bf16, Product::Bf16)->Name("gemm_bf16/shape")->Apply(gemm_shapes)->UseRealTime()->Unit(benchmark::kMicrosecond);
// the same layers' weight gradients, colᵀ dZ with the patches written out,
// and a Winograd chunk's Vᵀ dM at 64 channels
void transposed_shapes(benchmark::internal::Benchmark* b) {
  b->Args({288, 25088, 32})->Args({288, 6272, 64})->Args({576, 2048, 128})->Args({64, 128, 64});
}
BENCHMARK_CAPTURE(shape_gemm, float_at, Product::Float, true)->Name("gemm/shape_at")->Apply(transposed_shapes)->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(shape_gemm, bf16_at, Product::Bf16, true)->Name("gemm_bf16/shape_at")->Apply(transposed_shapes)->UseRealTime()->Unit(benchmark::kMicrosecond);
// The same strided layers' forward products as the convolution makes them:
// A read through a row table over a batch of 128 NHWC images (one run of C
// floats per tap, a run of zeros in the padding; 3x3, stride 2, same
// padding), in float with B packed once (as Im2colConv does) or in bfloat16,
// rounding the runs as they are packed; or their weight gradients (*At), as
// Im2colConv::backward makes them (its partials' sum, the same for both, left
// out). Args: H (= W), C, F.
enum class Gathered { Float, Bf16, Bf16Runs, FloatAt, Bf16At };
void gathered_gemm(benchmark::State& state, Gathered how) {
  const Index h = state.range(0), ch = state.range(1), f = state.range(2), batch = 128;
  const WindowAxis axis = window_axis(h, 3, 2, Padding::Same);
  const conv::ConvGeometry g{.h = h, .w = h, .c = ch, .kh = 3, .kw = 3, .f = f, .sh = 2, .sw = 2,
                             .pad_top = axis.pad_before, .pad_left = axis.pad_before, .oh = axis.out, .ow = axis.out};
  Random rng(3);
  const RowMatrix images = random_matrix(batch * h * h, ch, rng), b = random_matrix(g.patch(), f, rng);
  const std::vector<float> zeros(static_cast<std::size_t>(ch), 0.0f);
  std::vector<const float*> table(static_cast<std::size_t>(batch * g.pixels() * 9));
  for (Index n = 0; n < batch; ++n)  // the convolution's own table (Im2colConv::gather)
    conv::Im2colConv::gather(g, images.data() + n * g.input_size(), zeros.data(), table.data() + n * g.pixels() * 9);
  const gemm::GatheredRows a{table.data(), batch * g.pixels(), 9, ch};
  // the same runs in an image rounded beforehand (as a layer writing bfloat16 would leave it)
  std::vector<std::uint16_t> images16(static_cast<std::size_t>(images.size())), zeros16(zeros.size(), 0);
  gemm::bf16::round_into(images.data(), images.size(), images16.data());
  std::vector<const std::uint16_t*> table16;
  for (const float* run : table)
    table16.push_back(run == zeros.data() ? zeros16.data() : images16.data() + (run - images.data()));
  const gemm::bf16::GatheredRows a16{table16.data(), a.rows, 9, ch};
  const gemm::PackedB packed(gemm::view(b));  // each packed once, as Im2colConv packs its kernel
  const gemm::bf16::PackedB packed16(gemm::view(b));
  RowMatrix c(a.rows, f);
  const Index per_chunk = conv::Im2colConv::chunk_samples(g), chunks = (batch + per_chunk - 1) / per_chunk;
  const RowMatrix dz = random_matrix(a.rows, f, rng);
  RowMatrix parts(chunks * g.patch(), f);
  const auto weight_gradient = [&](Index chunk) {
    const Index s0 = chunk * per_chunk, rows = (std::min(batch, s0 + per_chunk) - s0) * g.pixels();
    const gemm::GatheredRows patches{table.data() + s0 * g.pixels() * 9, rows, 9, ch};
    auto part = parts.middleRows(chunk * g.patch(), g.patch());
    const auto dzc = dz.middleRows(s0 * g.pixels(), rows);
    if (how == Gathered::FloatAt)
      gemm::multiply_transposed(gemm::mutable_view(part), patches, gemm::view(dzc));
    else
      gemm::bf16::multiply_transposed(gemm::mutable_view(part), patches, gemm::view(dzc));
  };
  for (auto _ : state) {
    if (how == Gathered::FloatAt || how == Gathered::Bf16At)
      parallel_for(chunks, true, weight_gradient);
    else if (how == Gathered::Bf16Runs)
      gemm::bf16::parallel_multiply(gemm::mutable_view(c), a16, packed16);
    else if (how == Gathered::Bf16)
      gemm::bf16::parallel_multiply(gemm::mutable_view(c), a, packed16);
    else
      gemm::parallel_multiply(gemm::mutable_view(c), a, packed);
    benchmark::DoNotOptimize(c.data());
    benchmark::ClobberMemory();
  }
  state.counters["GFLOP/s"] = benchmark::Counter(
      2.0 * static_cast<double>(a.rows) * static_cast<double>(a.cols()) * static_cast<double>(f) * 1e-9,
      benchmark::Counter::kIsIterationInvariantRate);
}
void gathered_shapes(benchmark::internal::Benchmark* b) {
  b->Args({28, 32, 32})->Args({14, 32, 64})->Args({7, 64, 128});
}
BENCHMARK_CAPTURE(gathered_gemm, float, Gathered::Float)->Name("gemm/gathered")->Apply(gathered_shapes)->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(gathered_gemm, bf16, Gathered::Bf16)->Name("gemm_bf16/gathered")->Apply(gathered_shapes)->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(gathered_gemm, bf16_runs, Gathered::Bf16Runs)->Name("gemm_bf16/gathered_runs")->Apply(gathered_shapes)->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(gathered_gemm, float_at, Gathered::FloatAt)->Name("gemm/gathered_at")->Apply(gathered_shapes)->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(gathered_gemm, bf16_at, Gathered::Bf16At)->Name("gemm_bf16/gathered_at")->Apply(gathered_shapes)->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(square_gemm, eigen, Gemm::Eigen)
    ->Name("eigen/gemm1t")
    ->Arg(1024)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

[[maybe_unused]] const bool registered = [] {
  for (const ProductShape& p : kShapes)
    benchmark::RegisterBenchmark((std::string("eigen/shape/") + p.name).c_str(), eigen_shape, p)
        ->UseRealTime()
        ->Unit(benchmark::kMicrosecond);
  return true;
}();

// The thread count: --threads=N / --threads N (removed from argv before
// Google Benchmark sees it), else $LOOM_BENCH_THREADS, else 2.
int take_threads(int& argc, char** argv) {
  auto parse = [](const char* what, const char* text) {
    char* end = nullptr;
    const long v = std::strtol(text, &end, 10);
    if (end == text || *end != '\0' || v < 1 || v > 1024) {
      std::cerr << "loom_bench: " << what << " expects a thread count >= 1, got \"" << text << "\"\n";
      std::exit(2);
    }
    return static_cast<int>(v);
  };
  int threads = 2;
  if (const char* env = std::getenv("LOOM_BENCH_THREADS"); env && *env) threads = parse("LOOM_BENCH_THREADS", env);
  int out = 1;
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--threads=", 10) == 0) {
      threads = parse("--threads", argv[i] + 10);
    } else if (std::strcmp(argv[i], "--threads") == 0) {
      if (i + 1 >= argc) parse("--threads", "");
      threads = parse("--threads", argv[++i]);
    } else {
      argv[out++] = argv[i];
    }
  }
  argc = out;
  argv[argc] = nullptr;
  return threads;
}

}  // namespace

int main(int argc, char** argv) {
  const int threads = take_threads(argc, argv);
  loom::set_threads(threads);
  benchmark::AddCustomContext("loom_threads", std::to_string(threads));
  benchmark::AddCustomContext("eigen_version", std::to_string(EIGEN_WORLD_VERSION) + "." +
                                                   std::to_string(EIGEN_MAJOR_VERSION) + "." +
                                                   std::to_string(EIGEN_MINOR_VERSION));
  benchmark::AddCustomContext("eigen_simd", Eigen::SimdInstructionSetsInUse());
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
