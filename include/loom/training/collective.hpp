#pragma once
// Collective: what data-parallel training needs from a group of processes
// (ranks), and nothing more. fit takes one through FitOptions::collective;
// the core library knows only this interface, so it builds and behaves the
// same without MPI. loom::distributed::MpiCommunicator implements it on MPI
// (include/loom/distributed/mpi_communicator.hpp).
//
// Every rank calls the same collectives in the same order with the same
// sizes. An implementation must give every rank the bitwise same result of a
// reduction (data-parallel training keeps identical weights on every rank by
// applying identical reduced gradients), and must not hang forever when a
// rank is gone: it ends the job with a message instead.
//
// Thread safety: one thread calls a Collective at a time.

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <type_traits>
#include <vector>

namespace loom {

class Collective {
 public:
  virtual ~Collective() = default;
  /// This process's number, 0 to size() - 1; rank 0 reads and writes files.
  virtual int rank() const = 0;
  virtual int size() const = 0;
  /// Element-wise sum over every rank, in place; every rank gets the same sums.
  virtual void allreduce_sum(std::span<float> values) = 0;
  virtual void allreduce_sum(std::span<double> values) = 0;
  /// root's bytes copied to every rank (the same count on every rank).
  virtual void broadcast(std::span<std::byte> bytes, int root) = 0;

  // Sharded collectives: values cut into size() blocks, block r being
  // [bounds[r], bounds[r + 1]) (size() + 1 offsets, the same on every rank;
  // bounds[size()] == values.size()). Data-parallel training sums gradients
  // with the first and shares the weights each rank updated with the second
  // (DataParallel: every rank updates only its block, ZeRO-1).

  /// Element-wise sum over every rank, of which this rank receives only its
  /// own block (the rest of values is left as scratch). The same inputs give
  /// the same bits on every run.
  virtual void reduce_scatter_sum(std::span<float> values, std::span<const std::size_t> bounds) = 0;
  /// Block r of rank r copied into block r of every rank.
  virtual void allgather(std::span<float> values, std::span<const std::size_t> bounds) = 0;
};

/// A value of root's, on every rank.
template <typename T>
  requires std::is_trivially_copyable_v<T>
void broadcast_value(Collective& c, T& value, int root = 0) {
  c.broadcast(std::as_writable_bytes(std::span<T>(&value, 1)), root);
}

/// root's byte vector, of any length, on every rank: its length, then its bytes.
inline void broadcast_bytes(Collective& c, std::vector<std::uint8_t>& bytes, int root = 0) {
  std::uint64_t n = bytes.size();
  broadcast_value(c, n, root);
  bytes.resize(n);
  if (n > 0) c.broadcast(std::as_writable_bytes(std::span<std::uint8_t>(bytes)), root);
}

}  // namespace loom
