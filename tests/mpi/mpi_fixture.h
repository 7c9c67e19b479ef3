// Shared state for MPI tests: the World created by mpi_main.cpp.
#pragma once

#include "modtrain/dist/world.h"

namespace modtrain::test {
extern World* g_world;
inline World& world() { return *g_world; }
}  // namespace modtrain::test
