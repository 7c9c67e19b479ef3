// Job start-up across ranks: every rank resolves the config, the ranks agree that it loaded and
// that they all resolved the same thing (hash compared), or they all stop with one clear error.
#pragma once

#include <string>
#include <vector>

#include "modtrain/config/loader.h"
#include "modtrain/dist/world.h"

namespace modtrain {

// Collective: call on every rank. Throws CollectiveError (exit 2, already printed) when the
// config is invalid on any rank or differs between ranks; applies log.level / log.all_ranks.
ResolvedConfig resolve_config_on_all_ranks(const World& world, const std::string& path,
                                           const std::vector<std::string>& overrides);

}  // namespace modtrain
