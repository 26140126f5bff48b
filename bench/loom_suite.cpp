// The loom side of bench/suite.py: one model of the benchmark suite
// (suite_models.hpp) trained and run on synthetic data, one JSON line out.
// bench/suite_pytorch.py is its PyTorch twin: same flags, same keys, same
// measurements. suite.py runs each model in its own child process, so the
// child's peak memory is that model's.
//
//   train_step_ms        median of the timed training steps (train_batch:
//                        forward, fused softmax cross-entropy, backward, Adam)
//                        on one batch of random images and labels, after 2
//                        untimed steps; steps repeat until both --min-steps
//                        and --min-seconds are reached
//   train_peak_rss_mb    ru_maxrss right after training (model, data, training)
//   inference[B]         predict on B images in one slice, after one untimed
//                        call, repeated like the steps: images_per_second =
//                        B / median seconds; ms = the median in milliseconds
//                        (at B = 1: the single-image latency)
//   peak_rss_mb          ru_maxrss at the end
//   params               the parameter count, which suite.py checks against PyTorch's
//   forward_flops_per_image  the model's forward FLOPs per image in the
//                        convention of flops.hpp (direct-equivalent matrix products)
//
//   loom_suite --model NAME [--threads 2] [--train-batch N] [--batches 1,32,64,256]
//              [--min-steps 10] [--min-seconds 1] [--seed 42]

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "loom/cli.hpp"
#include "loom/loom.hpp"
#include "flops.hpp"
#include "measure.hpp"
#include "suite_models.hpp"
#include "synthetic.hpp"

namespace {

using loom::bench::median;
using loom::bench::peak_rss_mb;
using loom::bench::seconds_since;

using namespace loom;

struct Args {
  std::string model;
  int threads = 2;
  Index train_batch = 0;  // 0: the model's own
  std::vector<Index> batches{std::begin(bench::kSuiteBatches), std::end(bench::kSuiteBatches)};
  int min_steps = 10;
  double min_seconds = 1.0;
  std::uint64_t seed = 42;
};

const char* kUsage =
    "usage: loom_suite --model NAME [options]\n"
    "Measures one model of the benchmark suite in loom and prints one JSON line.\n"
    "  --model NAME          seed, vgg, photo, wide, odd, mlp or resnet\n"
    "  --threads N           threads (default 2)\n"
    "  --train-batch N       training batch (default: the model's own)\n"
    "  --batches LIST        inference batch sizes, comma-separated (default 1,32,64,256)\n"
    "  --min-steps N         at least N timed repetitions of each measurement (default 10)\n"
    "  --min-seconds S       and at least S seconds of them (default 1; 0: --min-steps alone)\n"
    "  --seed N              seed of the weights (default 42)\n";

std::vector<Index> parse_list(const std::string& flag, const char* v) {
  std::vector<Index> out;
  std::stringstream ss(v);
  for (std::string item; std::getline(ss, item, ',');) out.push_back(cli::parse_int(flag, item.c_str(), 1));
  if (out.empty()) throw UsageError(flag + ": expected a comma-separated list of batch sizes");
  return out;
}

double parse_seconds(const std::string& flag, const char* v) {
  char* end = nullptr;
  const double s = std::strtod(v, &end);
  if (end == v || *end != '\0' || !(s >= 0.0 && s <= 3600.0))
    throw UsageError(flag + ": expected seconds between 0 and 3600, got \"" + v + "\"");
  return s;
}

Args parse(int argc, char** argv) {
  using cli::parse_int;
  Args a;
  cli::parse_flags(argc, argv, kUsage, [&](const std::string& flag, const char* v) {
    if (flag == "--model") a.model = v;
    else if (flag == "--threads") a.threads = parse_int<int>(flag, v, 1);
    else if (flag == "--train-batch") a.train_batch = parse_int(flag, v, 1);
    else if (flag == "--batches") a.batches = parse_list(flag, v);
    else if (flag == "--min-steps") a.min_steps = parse_int<int>(flag, v, 1);
    else if (flag == "--min-seconds") a.min_seconds = parse_seconds(flag, v);
    else if (flag == "--seed") a.seed = static_cast<std::uint64_t>(parse_int(flag, v, 0));
    else return false;
    return true;
  });
  return a;
}

// Seconds of each call of fn, repeated until min_steps calls and min_seconds in all.
std::vector<double> timed(const Args& a, const std::function<void()>& fn) {
  std::vector<double> s;
  double total = 0.0;
  while (static_cast<int>(s.size()) < a.min_steps || total < a.min_seconds) {
    const auto t0 = std::chrono::steady_clock::now();
    fn();
    s.push_back(seconds_since(t0));
    total += s.back();
  }
  return s;
}

int run(const Args& a) {
  const bench::SuiteModel* m = bench::find_suite_model(a.model);
  if (!m) throw UsageError("--model: unknown model \"" + a.model + "\"; expected seed, vgg, photo, wide, odd, mlp or resnet");
  set_threads(a.threads);
  const Index train_batch = a.train_batch > 0 ? a.train_batch : m->train_batch;

  Sequential model = m->build(a.seed);
  Random rng(7);
  float sink = 0.0f;  // keeps the results observable
  {
    const Tensor x = bench::random_images(train_batch, model.input_shape(), rng);
    const auto y = bench::random_labels(train_batch, model.num_classes(), rng);
    for (int i = 0; i < 2; ++i) sink += static_cast<float>(model.train_batch(x, y).loss_sum);  // warm-up: buffers, Adam's moments
    const std::vector<double> steps = timed(a, [&] { sink += static_cast<float>(model.train_batch(x, y).loss_sum); });
    const double train_rss = peak_rss_mb();
    std::printf("{\"framework\": \"loom\", \"model\": \"%s\", \"threads\": %d, \"params\": %lld, "
                "\"forward_flops_per_image\": %.0f, \"train_batch\": %lld, \"train_step_ms\": %.4f, \"train_steps\": %zu, \"train_peak_rss_mb\": %.1f, "
                "\"inference\": {",
                std::string(m->name).c_str(), a.threads, static_cast<long long>(model.param_count()),
                bench::forward_flops_per_image(model), static_cast<long long>(train_batch), median(steps) * 1e3, steps.size(), train_rss);
  }
  const char* sep = "";
  for (const Index b : a.batches) {
    const Tensor x = bench::random_images(b, model.input_shape(), rng);
    sink += model.predict(x, b)(0, 0, 0, 0);  // warm-up
    const double s = median(timed(a, [&] { sink += model.predict(x, b)(0, 0, 0, 0); }));
    std::printf("%s\"%lld\": {\"images_per_second\": %.1f, \"ms\": %.4f}", sep, static_cast<long long>(b),
                static_cast<double>(b) / s, s * 1e3);
    sep = ", ";
  }
  if (sink != sink) std::fprintf(stderr, "loom_suite: the results are not finite\n");
  std::printf("}, \"peak_rss_mb\": %.1f}\n", peak_rss_mb());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return loom::cli::run_main("loom_suite", [&] { return run(parse(argc, argv)); });
}
