// Data-parallel training speed: one process, or every rank of an mpirun job
// (--distributed), trains a suite model (bench/suite_models.hpp) on synthetic
// data for one epoch of --steps global batches after an untimed warm-up epoch,
// and rank 0 prints one JSON line:
//
//   {"model", "ranks", "threads_per_rank", "global_batch", "steps", "params",
//    "gradient_bytes"          floats summed per step (gradients + 2), x4
//    "step_ms"                 the timed epoch / steps (fit's own clock)
//    "images_per_second"
//    "collective_ms_per_step"  time inside collectives during that epoch (the
//                              allreduce plus any wait for a slower rank)
//    "collective_share"        of step_ms
//    "allreduce_ms"            one allreduce of gradient_bytes alone, after a
//                              broadcast that lines the ranks up; the median of
//                              --allreduce-repeats
//    "allreduce_share"         allreduce_ms / step_ms
//    "sharded_ms"              the same for what a sharded step (Adam) sends
//                              instead: a reduce-scatter of the gradients, then
//                              an allgather of the weights
//    "sharded_share"}          sharded_ms / step_ms
//
//   loom_distributed_bench [--model seed] [--batch N] [--steps 60] [--threads 1]
//                          [--allreduce-repeats 50] [--distributed]
//   mpirun -np 2 --bind-to core loom_distributed_bench --distributed --threads 1
//
// bench/distributed_scaling.py runs 2 ranks x 1 thread against 1 process x 2
// threads and prints the ratio (docs/distributed.md).

#include <chrono>
#include <cstdio>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "loom/cli.hpp"
#include "loom/distributed/mpi_communicator.hpp"
#include "loom/loom.hpp"
#include "measure.hpp"
#include "suite_models.hpp"
#include "synthetic.hpp"

namespace {

using namespace loom;

struct Args {
  std::string model = "seed";
  std::optional<Index> batch;
  Index steps = 60;
  int threads = 1;
  int allreduce_repeats = 50;
  bool distributed = false;
};

const char* kUsage =
    "usage: loom_distributed_bench [options]   (under mpirun with --distributed)\n"
    "Times an epoch of data-parallel training of a suite model on synthetic data; one JSON line.\n"
    "  --model NAME             seed, vgg, photo, wide, odd, mlp or resnet (default seed)\n"
    "  --batch N                global batch (default: the model's training batch)\n"
    "  --steps N                global batches in the timed epoch (default 60)\n"
    "  --threads N              threads per process (default 1)\n"
    "  --allreduce-repeats N    isolated allreduces timed (default 50)\n"
    "  --distributed            train data-parallel over MPI\n";

Args parse(int argc, char** argv) {
  using cli::parse_int;
  Args a;
  cli::parse_args(
      argc, argv, 1, kUsage, {"--distributed"},
      [&](const std::string& flag, const char* v) {
        if (flag == "--model") a.model = v;
        else if (flag == "--batch") a.batch = parse_int(flag, v, 1);
        else if (flag == "--steps") a.steps = parse_int(flag, v, 1);
        else if (flag == "--threads") a.threads = parse_int<int>(flag, v, 1);
        else if (flag == "--allreduce-repeats") a.allreduce_repeats = parse_int<int>(flag, v, 1);
        else if (flag == "--distributed") a.distributed = true;
        else return false;
        return true;
      },
      [&](const std::string& arg) { throw UsageError(std::string("unexpected argument \"") + arg + "\"\n" + kUsage); });
  return a;
}

const bench::SuiteModel& find_model(const std::string& name) {
  for (const bench::SuiteModel& m : bench::suite_models())
    if (m.name == name) return m;
  throw UsageError("--model: no suite model \"" + name + "\"");
}

// The median time of exchange() over n floats, the ranks lined up by a broadcast before each.
template <typename Exchange>
double median_ms(Collective& world, std::size_t n, int repeats, Exchange exchange) {
  std::vector<float> values(n, 1.0f);
  std::vector<double> ms;
  for (int i = 0; i < repeats; ++i) {
    char go = 0;
    broadcast_value(world, go);
    const auto t0 = std::chrono::steady_clock::now();
    exchange(std::span<float>(values));
    ms.push_back(1e3 * bench::seconds_since(t0));
  }
  return bench::median(ms);
}

// A sharded step's exchange, in DataParallel's blocks.
double sharded_ms(Collective& world, std::size_t n, int repeats) {
  const std::vector<std::size_t> bounds = DataParallel::block_bounds(n, world.size());
  return median_ms(world, n, repeats, [&](std::span<float> v) {
    world.reduce_scatter_sum(v, bounds);
    world.allgather(v, bounds);
  });
}

int run(const Args& a) {
  std::unique_ptr<distributed::MpiCommunicator> world;
  if (a.distributed) world = std::make_unique<distributed::MpiCommunicator>();
  set_threads(a.threads);
  const bench::SuiteModel& spec = find_model(a.model);
  const Index batch = a.batch.value_or(spec.train_batch), n = batch * a.steps;
  Sequential model = spec.build(1);
  Random rng(2);
  const Tensor x = bench::random_images(n, model.input_shape(), rng);
  const std::vector<Label> y = bench::random_labels(n, model.num_classes(), rng);
  const TensorSamples data(x, y, model.input_shape());
  FitOptions o{.epochs = 1, .batch_size = batch, .verbose = 0, .collective = world.get()};
  model.fit(data, o);  // warm-up: buffers sized, pages touched
  const double in_collectives = world ? world->seconds_in_collectives() : 0.0;
  o.seed = 1;
  const History h = model.fit(data, o);
  const double step_ms = 1e3 * h.epochs.at(0).seconds / static_cast<double>(a.steps);
  const double collective_ms =
      world ? 1e3 * (world->seconds_in_collectives() - in_collectives) / static_cast<double>(a.steps) : 0.0;
  const std::size_t floats = static_cast<std::size_t>(model.param_count()) + 2;
  const auto allreduce = [&](std::span<float> v) { world->allreduce_sum(v); };
  const double reduce_ms = world ? median_ms(*world, floats, a.allreduce_repeats, allreduce) : 0.0;
  const double shard_ms = world ? sharded_ms(*world, floats - 2, a.allreduce_repeats) : 0.0;
  if (world && world->rank() != 0) return 0;
  std::printf(
      "{\"model\": \"%s\", \"ranks\": %d, \"threads_per_rank\": %d, \"global_batch\": %lld, \"steps\": %lld, "
      "\"params\": %lld, \"gradient_bytes\": %zu, \"step_ms\": %.3f, \"images_per_second\": %.0f, "
      "\"collective_ms_per_step\": %.3f, \"collective_share\": %.4f, \"allreduce_ms\": %.3f, "
      "\"allreduce_share\": %.4f, \"sharded_ms\": %.3f, \"sharded_share\": %.4f}\n",
      a.model.c_str(), world ? world->size() : 1, threads(), static_cast<long long>(batch),
      static_cast<long long>(a.steps), static_cast<long long>(model.param_count()), floats * sizeof(float), step_ms,
      1e3 * static_cast<double>(batch) / step_ms, collective_ms, collective_ms / step_ms, reduce_ms,
      reduce_ms / step_ms, shard_ms, shard_ms / step_ms);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return loom::cli::run_main("loom_distributed_bench", [&] { return run(parse(argc, argv)); });
}
