// The state of a shared host's cores, for the comparison reports: how far
// apart the first two CPUs this process may run on are (the round trip of a
// cache line between them), and how fast each one computes on its own.
//
// On the virtual machines these benchmarks run on, both change from minute
// to minute: the hypervisor moves the two vCPUs between placements where a
// round trip takes about 110 ns and about 450 ns, and loom's two-thread
// training step of the seed model took 1.03 ms in the first and 1.6 ms in
// the second (docs/benchmarks.md, "The host's two placements"). A ratio from
// one run is only comparable to another run's in the same placement, so
// bench/benchlib.py records this probe before and after each comparison.
//
//   loom_core_probe      one JSON line:
//     {"cpus": [a, b], "round_trip_ns": R, "core_gflops": [x, y]}
//   round_trip_ns  median of 5 rounds, each the mean of 20,000 round trips of
//                  one cache line between threads pinned to a and b, after
//                  a round of warm-up (null with a single CPU)
//   core_gflops    per CPU, a thread pinned to it running independent
//                  multiply-adds on 8-float vectors, the best of 4 runs of
//                  about 5 ms each (a relative speed: the loop is not the
//                  FMA peak of peak/fma)

#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

bool pin(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  return pthread_setaffinity_np(pthread_self(), sizeof set, &set) == 0;
}

std::vector<int> allowed_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  std::vector<int> cpus;
  if (sched_getaffinity(0, sizeof set, &set) != 0) return cpus;
  for (int c = 0; c < CPU_SETSIZE; ++c)
    if (CPU_ISSET(c, &set)) cpus.push_back(c);
  return cpus;
}

// Nanoseconds of a round trip of one cache line between cpus a and b: the
// mean of each of `rounds` runs of `trips`, after one run of warm-up.
std::vector<double> round_trips_ns(int a, int b, int rounds, int trips) {
  struct alignas(64) Line {  // a cache line of its own: nothing else on it moves
    std::atomic<int> value{0};
    char pad[64 - sizeof(std::atomic<int>)];
  };
  static Line shared;
  std::atomic<int>& line = shared.value;
  line.store(0);
  const int total = (rounds + 1) * trips;
  std::thread echo([&] {
    pin(b);
    for (int i = 0; i < total; ++i) {
      while (line.load(std::memory_order_acquire) != 2 * i + 1) {
      }
      line.store(2 * i + 2, std::memory_order_release);
    }
  });
  pin(a);
  std::vector<double> ns;
  for (int r = 0, i = 0; r <= rounds; ++r) {
    const auto t0 = Clock::now();
    for (int k = 0; k < trips; ++k, ++i) {
      line.store(2 * i + 1, std::memory_order_release);
      while (line.load(std::memory_order_acquire) != 2 * i + 2) {
      }
    }
    if (r > 0) ns.push_back(std::chrono::duration<double, std::nano>(Clock::now() - t0).count() / trips);
  }
  echo.join();
  return ns;
}

// GFLOP/s of one thread pinned to cpu: 8 independent chains of 8-float
// multiply-adds (enough to cover the FMA latency), best of 4 runs.
double core_gflops(int cpu) {
  double result = 0.0;
  std::thread worker([&] {
    pin(cpu);
    using V = float __attribute__((vector_size(32)));
    V acc[8];
    for (int k = 0; k < 8; ++k) acc[k] = V{} + static_cast<float>(k);
    const V mul = V{} + 0.999999f, add = V{} + 1e-7f;
    const long iters = 5'000'000;
    double best = 0.0;
    for (int rep = 0; rep < 4; ++rep) {
      const auto t0 = Clock::now();
      for (long i = 0; i < iters; ++i)
        for (int k = 0; k < 8; ++k) acc[k] = acc[k] * mul + add;
      const double s = std::chrono::duration<double>(Clock::now() - t0).count();
      best = std::max(best, 2.0 * 8 * 8 * static_cast<double>(iters) / s * 1e-9);
    }
    float sink = 0.0f;
    for (int k = 0; k < 8; ++k) sink += acc[k][0];
    result = sink == sink ? best : 0.0;  // keeps the chains observable
  });
  worker.join();
  return result;
}

}  // namespace

int main() {
  const std::vector<int> cpus = allowed_cpus();
  if (cpus.empty()) {
    std::fprintf(stderr, "loom_core_probe: cannot read this process's CPU affinity\n");
    return 1;
  }
  const std::vector<int> probed(cpus.begin(), cpus.begin() + std::min<std::size_t>(2, cpus.size()));
  std::printf("{\"cpus\": [");
  for (std::size_t i = 0; i < probed.size(); ++i) std::printf("%s%d", i ? ", " : "", probed[i]);
  std::printf("], \"round_trip_ns\": ");
  if (probed.size() == 2) {
    std::vector<double> rounds = round_trips_ns(probed[0], probed[1], 5, 20'000);
    std::sort(rounds.begin(), rounds.end());
    std::printf("%.1f", rounds[2]);
  } else {
    std::printf("null");
  }
  std::printf(", \"core_gflops\": [");
  for (std::size_t i = 0; i < probed.size(); ++i) std::printf("%s%.1f", i ? ", " : "", core_gflops(probed[i]));
  std::printf("]}\n");
  return 0;
}
