// The MPI communicators behind a World, for the few files that call MPI themselves (the control
// plane, the MPI data plane, NCCL's start-up). Everything else sees only dist/world.h.
#pragma once

#include <mpi.h>

#include "modtrain/dist/world.h"

namespace modtrain {

struct MpiHandles {
  MPI_Comm comm = MPI_COMM_WORLD;  // the job's ranks
  MPI_Comm node = MPI_COMM_NULL;   // this node's ranks (MPI_COMM_TYPE_SHARED)
};

}  // namespace modtrain
