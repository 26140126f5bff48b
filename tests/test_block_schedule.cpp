// BlockSchedule (loom/block_schedule.hpp), parallel_for's schedule: each
// index runs once, whatever the team, and a thread held up on its block has
// the block's last indices taken by the other thread, not its first ones.
#include <omp.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <thread>
#include <vector>

#include "loom/block_schedule.hpp"
#include "loom/parallel.hpp"

using loom::BlockSchedule;
using loom::Index;

namespace {

// Runs a schedule of n indices for `blocks` threads on a team of `team`;
// returns how many times each index ran.
std::vector<int> runs_per_index(Index n, int blocks, int team) {
  std::vector<std::atomic<int>> runs(static_cast<std::size_t>(n));
  BlockSchedule schedule(n, blocks);
#pragma omp parallel num_threads(team)
  schedule.run([&](Index i) { runs[static_cast<std::size_t>(i)].fetch_add(1); });
  std::vector<int> out;
  for (auto& r : runs) out.push_back(r.load());
  return out;
}

// Waits (at most 10 s, so that a broken schedule fails rather than hangs) until done().
template <typename Done>
void wait_until(Done&& done) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!done() && std::chrono::steady_clock::now() < until) std::this_thread::sleep_for(std::chrono::milliseconds(1));
}

}  // namespace

TEST_CASE("BlockSchedule runs every index exactly once, for any team and any number of blocks", "[parallel]") {
  for (const Index n : {0, 1, 2, 3, 7, 64, 1001})
    for (const int blocks : {1, 2, 3, 4})
      for (const int team : {1, 2, 4}) {
        INFO("n " << n << ", blocks " << blocks << ", team " << team);
        const std::vector<int> runs = runs_per_index(n, blocks, team);
        for (Index i = 0; i < n; ++i) CHECK(runs[static_cast<std::size_t>(i)] == 1);
      }
}

TEST_CASE("BlockSchedule: a thread held up on its block has its last indices taken by the other", "[parallel]") {
  constexpr Index n = 40;  // thread 0's block: 0-19, thread 1's: 20-39
  std::vector<int> ran_on(n, -1);
  std::atomic<int> taken_from_block0{0};
  std::atomic<Index> first_taken_from_block0{-1};
  std::atomic<bool> team_of_two{true}, owner_started{false};
  BlockSchedule schedule(n, 2);
#pragma omp parallel num_threads(2)
  {
    if (omp_get_num_threads() < 2) team_of_two = false;
    const int t = omp_get_thread_num();
    schedule.run([&](Index i) {
      ran_on[static_cast<std::size_t>(i)] = t;
      if (t == 1 && i < n / 2 && taken_from_block0.fetch_add(1) == 0) first_taken_from_block0 = i;
      if (!team_of_two) return;
      if (t == 1 && i == n / 2) wait_until([&] { return owner_started.load(); });  // index 0 is claimed first
      if (t == 0 && i == 0) {  // held up until the other thread has taken from this block
        owner_started = true;
        wait_until([&] { return taken_from_block0.load() > 0; });
      }
    });
  }
  if (!team_of_two) {
    WARN("OpenMP gave a team of one: nothing to take from another thread");
    return;
  }
  REQUIRE(taken_from_block0.load() > 0);
  CHECK(ran_on[0] == 0);                               // the owner's first index stays with it
  CHECK(first_taken_from_block0.load() == n / 2 - 1);  // the other begins at the block's end
  for (Index i = n / 2; i < n; ++i) CHECK(ran_on[static_cast<std::size_t>(i)] == 1);
  // What the other thread took from block 0 is its tail: one run of indices up to 19.
  Index first_taken = n / 2;
  while (first_taken > 0 && ran_on[static_cast<std::size_t>(first_taken - 1)] == 1) --first_taken;
  CHECK(first_taken > 0);
  CHECK(n / 2 - first_taken == taken_from_block0.load());
  for (Index i = 0; i < first_taken; ++i) CHECK(ran_on[static_cast<std::size_t>(i)] == 0);
}

TEST_CASE("parallel_for and parallel_for_with run every index once, spread or not", "[parallel]") {
  for (const bool spread : {false, true})
    for (const Index n : {1, 2, 5, 300}) {
      std::vector<std::atomic<int>> runs(static_cast<std::size_t>(n));
      loom::parallel_for(n, spread, [&](Index i) { runs[static_cast<std::size_t>(i)].fetch_add(1); });
      loom::parallel_for_with<std::vector<float>>(n, spread, [&](Index i, std::vector<float>& scratch) {
        scratch.assign(4, 1.0f);
        runs[static_cast<std::size_t>(i)].fetch_add(static_cast<int>(scratch[0]));
      });
      loom::parallel_for_with<int, loom::Schedule::Dynamic>(n, spread, [&](Index i, int&) {
        runs[static_cast<std::size_t>(i)].fetch_add(1);
      });
      for (auto& r : runs) CHECK(r.load() == 3);
    }
}
