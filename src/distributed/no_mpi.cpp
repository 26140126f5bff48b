// MpiCommunicator in a loom built without MPI: the class exists so that
// programs compile alike, and using it says how to get MPI.

#include <cstdlib>
#include <string>

#include "loom/distributed/mpi_communicator.hpp"
#include "loom/error.hpp"

namespace loom::distributed {

namespace {
[[noreturn]] void unavailable() {
  throw UsageError("this loom was built without MPI, so it cannot train distributed: install Open MPI "
                   "(apt-get install libopenmpi-dev openmpi-bin) and rebuild with -DLOOM_MPI=ON");
}
}  // namespace

bool MpiCommunicator::available() { return false; }
double MpiCommunicator::default_timeout() { return 20.0; }
MpiCommunicator::MpiCommunicator(double) { unavailable(); }
MpiCommunicator::~MpiCommunicator() = default;
void MpiCommunicator::abort(const std::string&) const { std::abort(); }
void MpiCommunicator::wait(void*, int, const char*, std::size_t) { unavailable(); }
void MpiCommunicator::shift(std::span<const float>, std::span<float>, const char*) { unavailable(); }
void MpiCommunicator::allreduce_sum(std::span<float>) { unavailable(); }
void MpiCommunicator::allreduce_sum(std::span<double>) { unavailable(); }
void MpiCommunicator::broadcast(std::span<std::byte>, int) { unavailable(); }
void MpiCommunicator::reduce_scatter_sum(std::span<float>, std::span<const std::size_t>) { unavailable(); }
void MpiCommunicator::allgather(std::span<float>, std::span<const std::size_t>) { unavailable(); }

}  // namespace loom::distributed
