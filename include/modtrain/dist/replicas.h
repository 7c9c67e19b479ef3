// Replica checks for data parallelism: every rank holds the same weights after a broadcast, a
// load and every optimiser step, or the run is wrong in a way no loss curve shows. A cheap
// fingerprint per parameter on the control plane, run every dist.check_replicas_every steps and
// after each load.
#pragma once

#include <cstdint>
#include <string>

#include "modtrain/dist/collectives.h"
#include "modtrain/dist/flat_params.h"

namespace modtrain {

// Compares the replicas across ranks (two float64 checksums per parameter, gathered on the
// control plane); throws naming the first parameter that differs from rank 0's. `after_load`:
// the check that follows loading a checkpoint or pretrained weights (`source`), whose failure
// means the ranks read different files at the same path.
void check_replicas(const NamedParameters& params, Collectives& collectives, int64_t step);
void check_replicas_after_load(const NamedParameters& params, Collectives& collectives, const std::string& source);

}  // namespace modtrain
