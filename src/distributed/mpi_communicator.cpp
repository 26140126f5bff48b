// MpiCommunicator on Open MPI (or any MPI 3): nonblocking collectives polled
// against a deadline, so a dead or stopped rank ends the job instead of
// hanging it. Compiled only when loom is built with MPI (LOOM_MPI).

#include "loom/distributed/mpi_communicator.hpp"

#include <mpi.h>
#include <sched.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <limits>
#include <string>
#include <vector>

#include "loom/error.hpp"

namespace loom::distributed {
namespace {

using Clock = std::chrono::steady_clock;

// Point-to-point tags of the "are you there?" exchange after a timeout.
// They cannot meet the collectives' messages: MPI keeps those apart.
constexpr int kPingTag = 0x100B, kPongTag = 0x100C;
// Point-to-point tag of the rings (reduce_scatter_sum, allgather). Messages
// between two ranks with one tag arrive in the order sent, so the steps of
// one ring and of consecutive rings cannot be confused.
constexpr int kRingTag = 0x100D;
constexpr double kPingSeconds = 2.0;

void check(int rc, const char* what) {
  if (rc == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  MPI_Error_string(rc, text, &length);
  throw Error(std::string("MPI ") + what + " failed: " + std::string(text, static_cast<std::size_t>(length)));
}

// Answers the pings of ranks that are timing out (see missing_ranks): a rank
// waiting in a collective is alive, and says so.
void answer_pings() {
  for (;;) {
    int pinged = 0;
    MPI_Status status;
    MPI_Iprobe(MPI_ANY_SOURCE, kPingTag, MPI_COMM_WORLD, &pinged, &status);
    if (!pinged) return;
    int token = 0;
    MPI_Recv(&token, 1, MPI_INT, status.MPI_SOURCE, kPingTag, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    MPI_Send(&token, 1, MPI_INT, status.MPI_SOURCE, kPongTag, MPI_COMM_WORLD);
  }
}

// After a timeout: pings every other rank and lists those that do not answer
// within kPingSeconds (dead, stopped, or busy outside loom's collectives).
std::string missing_ranks(int self, int size) {
  std::vector<MPI_Request> sends, receives;
  std::vector<int> tokens(static_cast<std::size_t>(size), 1), answers(static_cast<std::size_t>(size), 0);
  std::vector<int> peers;
  for (int r = 0; r < size; ++r) {
    if (r == self) continue;
    peers.push_back(r);
    sends.emplace_back();
    receives.emplace_back();
    MPI_Isend(&tokens[static_cast<std::size_t>(r)], 1, MPI_INT, r, kPingTag, MPI_COMM_WORLD, &sends.back());
    MPI_Irecv(&answers[static_cast<std::size_t>(r)], 1, MPI_INT, r, kPongTag, MPI_COMM_WORLD, &receives.back());
  }
  std::vector<int> answered(peers.size(), 0);
  const auto deadline = Clock::now() + std::chrono::duration<double>(kPingSeconds);
  while (Clock::now() < deadline) {
    answer_pings();
    bool all = true;
    for (std::size_t i = 0; i < peers.size(); ++i) {
      if (!answered[i]) MPI_Test(&receives[i], &answered[i], MPI_STATUS_IGNORE);
      all = all && answered[i];
    }
    if (all) return {};
    sched_yield();
  }
  std::string list;
  for (std::size_t i = 0; i < peers.size(); ++i)
    if (!answered[i]) list += (list.empty() ? "" : ", ") + std::to_string(peers[i]);
  return list;
}

// MPI counts are ints.
int count(std::size_t n) {
  if (n > static_cast<std::size_t>(std::numeric_limits<int>::max()))
    throw Error("MPI: " + std::to_string(n) + " values are more than one collective can carry");
  return static_cast<int>(n);
}

// An in-place sum over every rank, started; MpiCommunicator::wait completes it.
MPI_Request start_allreduce(void* values, std::size_t n, MPI_Datatype type) {
  MPI_Request r;
  check(MPI_Iallreduce(MPI_IN_PLACE, values, count(n), type, MPI_SUM, MPI_COMM_WORLD, &r), "MPI_Iallreduce");
  return r;
}

// Block r (taken modulo the rank count) of values cut at bounds.
std::span<float> block(std::span<float> values, std::span<const std::size_t> bounds, int r) {
  const int size = static_cast<int>(bounds.size()) - 1;
  const auto b = static_cast<std::size_t>(((r % size) + size) % size);
  return values.subspan(bounds[b], bounds[b + 1] - bounds[b]);
}

void check_bounds(std::span<const float> values, std::span<const std::size_t> bounds, int size) {
  bool fits =
      bounds.size() == static_cast<std::size_t>(size) + 1 && bounds.front() == 0 && bounds.back() == values.size();
  for (std::size_t i = 1; fits && i < bounds.size(); ++i) fits = bounds[i - 1] <= bounds[i];
  if (!fits) throw Error("MPI: the blocks of a sharded collective do not cover its values, one block per rank");
}

}  // namespace

bool MpiCommunicator::available() { return true; }

double MpiCommunicator::default_timeout() {
  if (const char* v = std::getenv("LOOM_MPI_TIMEOUT")) {
    char* end = nullptr;
    const double s = std::strtod(v, &end);
    if (end == v || *end != '\0' || !(s > 0.0))
      throw UsageError(std::string("LOOM_MPI_TIMEOUT must be a number of seconds > 0, got \"") + v + "\"");
    return s;
  }
  return 20.0;
}

MpiCommunicator::MpiCommunicator(double timeout_seconds)
    : timeout_(timeout_seconds > 0.0 ? timeout_seconds : default_timeout()) {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized) {
    int provided = 0;
    check(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
    finalize_ = true;
  }
  MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &size_);
  MPI_Comm local;
  check(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &local), "MPI_Comm_split_type");
  MPI_Comm_size(local, &local_size_);
  MPI_Comm_free(&local);
}

MpiCommunicator::~MpiCommunicator() {
  if (finalize_ && std::uncaught_exceptions() == 0) MPI_Finalize();
}

void MpiCommunicator::abort(const std::string& why) const {
  std::fprintf(stderr, "loom: rank %d of %d: %s\n", rank_, size_, why.c_str());
  std::fflush(stderr);
  MPI_Abort(MPI_COMM_WORLD, 1);
  std::abort();  // MPI_Abort does not return; this keeps [[noreturn]] honest
}

// Spins on MPI_Testall (which also progresses the requests), yielding the core
// once the wait passes 1 ms so that ranks sharing cores let the others run.
// Past the deadline: find who is missing, say so, end the job.
void MpiCommunicator::wait(void* requests, int n, const char* what, std::size_t bytes) {
  auto* r = static_cast<MPI_Request*>(requests);
  const auto start = Clock::now();
  const auto patient = start + std::chrono::milliseconds(1);
  const auto deadline = start + std::chrono::duration<double>(timeout_);
  for (unsigned polls = 1;; ++polls) {
    int done = 0;
    check(MPI_Testall(n, r, &done, MPI_STATUSES_IGNORE), what);
    if (done) break;
    if (polls % 64 != 0) continue;
    const auto now = Clock::now();
    if (now > patient) {
      answer_pings();
      sched_yield();
    }
    if (now > deadline) {
      const std::string missing = missing_ranks(rank_, size_);
      abort(std::string(what) + " of " + std::to_string(bytes) + " bytes did not complete within " +
            std::to_string(static_cast<int>(timeout_)) + " s (LOOM_MPI_TIMEOUT); " +
            (missing.empty() ? std::string("every rank answered a ping, so one is stuck elsewhere")
                             : "rank " + missing + " did not answer within " +
                                   std::to_string(static_cast<int>(kPingSeconds)) + " s: it died or stopped") +
            ". Ending the job; rerun the same command to resume from the last checkpoint");
    }
  }
  seconds_ += std::chrono::duration<double>(Clock::now() - start).count();
  ++calls_;
}

void MpiCommunicator::allreduce_sum(std::span<float> values) {
  MPI_Request r = start_allreduce(values.data(), values.size(), MPI_FLOAT);
  wait(&r, 1, "an allreduce", values.size_bytes());
}

void MpiCommunicator::allreduce_sum(std::span<double> values) {
  MPI_Request r = start_allreduce(values.data(), values.size(), MPI_DOUBLE);
  wait(&r, 1, "an allreduce", values.size_bytes());
}

void MpiCommunicator::broadcast(std::span<std::byte> bytes, int root) {
  MPI_Request r;
  check(MPI_Ibcast(bytes.data(), count(bytes.size()), MPI_BYTE, root, MPI_COMM_WORLD, &r), "MPI_Ibcast");
  wait(&r, 1, "a broadcast", bytes.size());
}

// Rings rather than MPI_Ireduce_scatter_block and MPI_Iallgather: Open MPI's
// nonblocking reduce-scatter reduces everything to rank 0 and scatters it
// again, and its nonblocking allreduce of a buffer in place (the fallback,
// DataParallel) does the same followed by a broadcast; on 2 ranks that sent
// twice the bytes of a ring, one after the other (docs/distributed.md).
void MpiCommunicator::shift(std::span<const float> send, std::span<float> receive, const char* what) {
  const int next = (rank_ + 1) % size_, previous = (rank_ + size_ - 1) % size_;
  MPI_Request r[2];
  check(MPI_Irecv(receive.data(), count(receive.size()), MPI_FLOAT, previous, kRingTag, MPI_COMM_WORLD, &r[0]),
        "MPI_Irecv");
  check(MPI_Isend(send.data(), count(send.size()), MPI_FLOAT, next, kRingTag, MPI_COMM_WORLD, &r[1]), "MPI_Isend");
  wait(r, 2, what, send.size_bytes());
}

// Step s: rank r passes its running sum of block r - s - 1 on to rank r + 1,
// and adds its own values to the running sum of block r - s - 2 that comes
// from rank r - 1. After size - 1 steps, block r holds every rank's sum. Each
// block is summed along the ring in one fixed order: the same bits every run.
void MpiCommunicator::reduce_scatter_sum(std::span<float> values, std::span<const std::size_t> bounds) {
  check_bounds(values, bounds, size_);
  for (int s = 0; s + 1 < size_; ++s) {
    const std::span<float> send = block(values, bounds, rank_ - s - 1), sum = block(values, bounds, rank_ - s - 2);
    received_.resize(sum.size());
    shift(send, received_, "a reduce-scatter");
    for (std::size_t i = 0; i < sum.size(); ++i) sum[i] += received_[i];
  }
}

// Step s: rank r passes block r - s on to rank r + 1 and receives block r - s - 1 in place.
void MpiCommunicator::allgather(std::span<float> values, std::span<const std::size_t> bounds) {
  check_bounds(values, bounds, size_);
  for (int s = 0; s + 1 < size_; ++s)
    shift(block(values, bounds, rank_ - s), block(values, bounds, rank_ - s - 1), "an allgather");
}

}  // namespace loom::distributed
