#pragma once
// The transport over MPI: world rank r is rank r of the run (0 the
// coordinator, 1..N the nodes), one process each, on one machine or many.
#include <memory>

#include "transport.hpp"

namespace splitinfer {

// The transport of MPI_COMM_WORLD (MPI is initialised). Every rank makes it
// at the same point: it splits the nodes' communicator off the world.
std::unique_ptr<Transport> make_mpi_transport();

}  // namespace splitinfer
