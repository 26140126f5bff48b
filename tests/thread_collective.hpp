#pragma once
// A Collective over threads of one process, for testing data-parallel fit
// without MPI (and under the sanitizers): rank r is the thread that holds
// ThreadCollective(group, r). Sums add the ranks' values in rank order, so
// every rank gets bitwise the same result, as MPI's allreduce gives; the
// sharded collectives sum or copy only the blocks they are asked for.

#include <barrier>
#include <cstddef>
#include <cstring>
#include <span>
#include <stdexcept>
#include <vector>

#include "loom/training/collective.hpp"

namespace loom::testing {

struct ThreadGroup {
  explicit ThreadGroup(int ranks) : size(ranks), barrier(ranks), slots(static_cast<std::size_t>(ranks)) {}
  int size;
  std::barrier<> barrier;
  std::vector<std::vector<std::byte>> slots;  // what each rank put up for the current collective
};

class ThreadCollective final : public Collective {
 public:
  ThreadCollective(ThreadGroup& group, int rank) : g_(group), rank_(rank) {}
  int rank() const override { return rank_; }
  int size() const override { return g_.size; }
  void allreduce_sum(std::span<float> v) override { sum(v, 0, v.size()); }
  void allreduce_sum(std::span<double> v) override { sum(v, 0, v.size()); }
  void reduce_scatter_sum(std::span<float> v, std::span<const std::size_t> bounds) override {
    check(v, bounds);
    sum(v, bounds[static_cast<std::size_t>(rank_)], bounds[static_cast<std::size_t>(rank_) + 1]);
  }
  void allgather(std::span<float> v, std::span<const std::size_t> bounds) override {
    check(v, bounds);
    put_up(std::as_bytes(v));
    for (std::size_t r = 0; r < slots().size(); ++r)
      if (r != static_cast<std::size_t>(rank_))
        std::memcpy(v.data() + bounds[r], slots()[r].data() + bounds[r] * sizeof(float),
                    (bounds[r + 1] - bounds[r]) * sizeof(float));
    g_.barrier.arrive_and_wait();
  }
  void broadcast(std::span<std::byte> bytes, int root) override {
    if (rank_ == root) g_.slots[static_cast<std::size_t>(root)].assign(bytes.begin(), bytes.end());
    g_.barrier.arrive_and_wait();
    if (rank_ != root) std::memcpy(bytes.data(), g_.slots[static_cast<std::size_t>(root)].data(), bytes.size());
    g_.barrier.arrive_and_wait();  // nobody reuses the slot before every rank has read it
  }

 private:
  const std::vector<std::vector<std::byte>>& slots() const { return g_.slots; }

  // This rank's bytes where every rank can read them, once every rank has put up its own.
  void put_up(std::span<const std::byte> bytes) {
    g_.slots[static_cast<std::size_t>(rank_)].assign(bytes.begin(), bytes.end());
    g_.barrier.arrive_and_wait();
  }

  void check(std::span<const float> v, std::span<const std::size_t> bounds) const {
    if (bounds.size() != slots().size() + 1 || bounds.front() != 0 || bounds.back() != v.size())
      throw std::logic_error("ThreadCollective: the blocks do not cover the values, one block per rank");
  }

  // v[first, last) summed over every rank (the rest of v left alone).
  template <typename T>
  void sum(std::span<T> v, std::size_t first, std::size_t last) {
    put_up(std::as_bytes(v));
    for (std::size_t i = first; i < last; ++i) {
      T s{};
      for (const std::vector<std::byte>& slot : g_.slots) {
        T x;
        std::memcpy(&x, slot.data() + i * sizeof(T), sizeof(T));
        s += x;
      }
      v[i] = s;
    }
    g_.barrier.arrive_and_wait();
  }

  ThreadGroup& g_;
  int rank_;
};

}  // namespace loom::testing
