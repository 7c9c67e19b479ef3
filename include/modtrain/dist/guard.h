// Runs a subcommand body so that any error on any rank ends the whole job promptly:
// the failing rank prints "[rank R] error: ..." and, when other ranks exist that may be waiting
// in a collective, aborts the job (MPI_Abort) instead of leaving them hanging.
#pragma once

#include <functional>

#include "modtrain/dist/world.h"

namespace modtrain {

// Returns the body's exit code, or the error's exit code (only when no abort was needed).
int run_guarded(const World& world, const std::function<int()>& body);

}  // namespace modtrain
