#pragma once
// A Collective over threads of one process, for testing data-parallel fit
// without MPI (and under the sanitizers): rank r is the thread that holds
// ThreadCollective(group, r). Sums add the ranks' values in rank order, so
// every rank gets bitwise the same result, as MPI's allreduce gives.

#include <barrier>
#include <cstddef>
#include <cstring>
#include <span>
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
  void allreduce_sum(std::span<float> v) override { sum(v); }
  void allreduce_sum(std::span<double> v) override { sum(v); }
  void broadcast(std::span<std::byte> bytes, int root) override {
    if (rank_ == root) g_.slots[static_cast<std::size_t>(root)].assign(bytes.begin(), bytes.end());
    g_.barrier.arrive_and_wait();
    if (rank_ != root) std::memcpy(bytes.data(), g_.slots[static_cast<std::size_t>(root)].data(), bytes.size());
    g_.barrier.arrive_and_wait();  // nobody reuses the slot before every rank has read it
  }

 private:
  template <typename T>
  void sum(std::span<T> v) {
    const auto bytes = std::as_bytes(v);
    g_.slots[static_cast<std::size_t>(rank_)].assign(bytes.begin(), bytes.end());
    g_.barrier.arrive_and_wait();
    for (std::size_t i = 0; i < v.size(); ++i) {
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
