// A loom built without MPI (src/distributed/no_mpi.cpp in place of the MPI
// communicator; tests/mpi/CMakeLists.txt links it so even in a build with
// MPI): training distributed is a usage error that names what to install.
// Exits 0 when it is.

#include <cstdio>
#include <string>

#include "loom/distributed/mpi_communicator.hpp"
#include "loom/error.hpp"

int main() {
  using loom::distributed::MpiCommunicator;
  if (MpiCommunicator::available()) {
    std::puts("FAIL: available() says this build has MPI");
    return 1;
  }
  try {
    MpiCommunicator world;
    std::puts("FAIL: an MpiCommunicator was made without MPI");
  } catch (const loom::UsageError& e) {
    const std::string what = e.what();
    const bool names_it = what.find("built without MPI") != std::string::npos &&
                          what.find("libopenmpi-dev openmpi-bin") != std::string::npos &&
                          what.find("-DLOOM_MPI=ON") != std::string::npos;
    std::printf("%s: %s\n", names_it ? "PASS" : "FAIL", e.what());
    return names_it ? 0 : 1;
  }
  return 1;
}
