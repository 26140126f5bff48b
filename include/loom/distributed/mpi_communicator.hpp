#pragma once
// loom::distributed::MpiCommunicator: the Collective of fit (FitOptions::
// collective) on MPI, for data-parallel training launched with mpirun:
//
//   loom::distributed::MpiCommunicator world;   // MPI_Init; MPI_Finalize when it goes
//   model.fit(train, {.epochs = 5, .batch_size = 32, .collective = &world});
//   if (world.rank() == 0) model.save("model.loom");
//
// No hang, ever: every collective is a nonblocking MPI call polled against a
// deadline (timeout(), LOOM_MPI_TIMEOUT seconds, default 20). A collective
// that does not complete in time means a rank died or stopped; the rank that
// waits says which ranks did not answer a last call, then ends the whole job
// with MPI_Abort. (A rank that is killed outright is usually noticed sooner by
// mpirun itself, which names it and ends the job.)
//
// This header never includes mpi.h. In a loom built without MPI (CMake option
// LOOM_MPI off, or MPI not found) the class exists, available() is false and
// constructing one is a UsageError saying so.
//
// Thread safety: one thread (the one that created it) calls it at a time;
// MPI is initialised with MPI_THREAD_FUNNELED (OpenMP workers never call MPI).

#include <cstddef>
#include <span>
#include <string>
#include <vector>

#include "loom/training/collective.hpp"

namespace loom::distributed {

class MpiCommunicator final : public Collective {
 public:
  /// Initialises MPI unless it already is. timeout_seconds <= 0 takes
  /// default_timeout().
  explicit MpiCommunicator(double timeout_seconds = 0.0);
  /// Finalises MPI when this object initialised it. During an exception's
  /// unwinding it does not (other ranks may be waiting in a collective):
  /// the process then exits without MPI_Finalize, and mpirun ends the job.
  ~MpiCommunicator() override;
  MpiCommunicator(const MpiCommunicator&) = delete;
  MpiCommunicator& operator=(const MpiCommunicator&) = delete;

  /// Whether this loom was built with MPI.
  static bool available();
  /// LOOM_MPI_TIMEOUT (seconds) when set, else 20.
  static double default_timeout();

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  /// Ranks on this host (to share its cores between them).
  int local_size() const { return local_size_; }
  double timeout() const { return timeout_; }

  void allreduce_sum(std::span<float> values) override;
  void allreduce_sum(std::span<double> values) override;
  void broadcast(std::span<std::byte> bytes, int root) override;
  /// Both on a ring of point-to-point messages (see the .cpp).
  void reduce_scatter_sum(std::span<float> values, std::span<const std::size_t> bounds) override;
  void allgather(std::span<float> values, std::span<const std::size_t> bounds) override;

  /// Seconds spent inside collectives since construction, and how many
  /// there were (a benchmark's communication time).
  double seconds_in_collectives() const { return seconds_; }
  long long collectives() const { return calls_; }

  /// Prints "loom: rank R: why" on stderr and ends every rank (MPI_Abort).
  [[noreturn]] void abort(const std::string& why) const;

 private:
  int rank_ = 0;
  int size_ = 1;
  int local_size_ = 1;
  double timeout_ = 0.0;
  bool finalize_ = false;
  double seconds_ = 0.0;
  long long calls_ = 0;

  std::vector<float> received_;  // a ring step's incoming block (reduce_scatter_sum)

  // Polls `count` started requests (MPI_Request*) to completion or to the deadline; see the .cpp.
  void wait(void* requests, int count, const char* what, std::size_t bytes);
  // One step of a ring: send to the next rank while receiving from the previous one.
  void shift(std::span<const float> send, std::span<float> receive, const char* what);
};

}  // namespace loom::distributed
