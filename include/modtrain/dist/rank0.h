// Decisions only rank 0 can make (what a path resolves to on its storage, whether the prepared
// data is stale, taking run.dir's lock): rank 0 decides, every rank learns the outcome, and an
// error on rank 0 ends every rank the same way instead of leaving the others waiting.
#pragma once

#include <functional>
#include <string>

#include "modtrain/dist/collectives.h"
#include "modtrain/dist/world.h"

namespace modtrain {

// Rank 0 runs `decide`; every rank returns its result. A UserError thrown by `decide` is logged once
// (by rank 0) and becomes the same CollectiveError (exit code kExitUsage) on every rank. Collective.
std::string decide_on_rank0(const World& world, const std::function<std::string()>& decide);
// The same over the control plane (bounded by dist.timeout_s); `what` names it in watchdog errors.
std::string decide_on_rank0(Collectives& collectives, const std::string& what,
                            const std::function<std::string()>& decide);

}  // namespace modtrain
