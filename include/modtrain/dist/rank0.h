// Decisions only rank 0 can make (what a path resolves to on its storage, whether the prepared
// data is stale, taking run.dir's lock): rank 0 decides, every rank learns the outcome, and an
// error on rank 0 ends every rank the same way instead of leaving the others waiting.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <utility>

#include "modtrain/dist/collectives.h"
#include "modtrain/dist/world.h"

namespace modtrain {

// Rank 0 runs `decide`; every rank returns its result. A UserError thrown by `decide` is logged once
// (by rank 0) and becomes the same CollectiveError (exit code kExitUsage) on every rank. Collective.
std::string decide_on_rank0(const World& world, const std::function<std::string()>& decide);
// Every rank runs `decide` on its share of a question and returns (order, answer), "" meaning
// nothing found; every rank returns the non-empty answer of the lowest order ("" when none). A
// UserError on any rank is logged once (by rank 0) and becomes the same CollectiveError on every
// rank. Collective.
std::string decide_on_all_ranks(const World& world, const std::function<std::pair<uint64_t, std::string>()>& decide);
// The same over the control plane (bounded by dist.timeout_s); `what` names it in watchdog errors.
std::string decide_on_rank0(Collectives& collectives, const std::string& what,
                            const std::function<std::string()>& decide);

}  // namespace modtrain
