// Catch2 runner for tests that run under `mpiexec -np N`: MPI is initialised once for the whole
// session, and all ranks return the same exit code (a failure on any rank fails every rank).
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <cstdio>

#include "modtrain/dist/world_mpi.h"
#include "mpi_fixture.h"

namespace modtrain::test {
World* g_world = nullptr;
}

int main(int argc, char** argv) {
  modtrain::World world;
  modtrain::test::g_world = &world;
  Catch::Session session;
  if (int rc = session.applyCommandLine(argc, argv)) return rc;
  int failed = session.run() > 0 ? 1 : 0;
  int any_failed = 0;
  MPI_Allreduce(&failed, &any_failed, 1, MPI_INT, MPI_MAX, world.mpi().comm);
  if (any_failed && !failed) std::fprintf(stderr, "[rank %d] another rank failed a test\n", world.rank());
  return any_failed;
}
