#include "modtrain/dist/startup.h"

#include <optional>

#include "modtrain/core/error.h"
#include "modtrain/core/log.h"
#include "modtrain/core/text.h"

namespace modtrain {
namespace {
log::Level to_log_level(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug: return log::Level::kDebug;
    case LogLevel::kInfo: return log::Level::kInfo;
    case LogLevel::kWarn: return log::Level::kWarn;
    case LogLevel::kError: return log::Level::kError;
  }
  return log::Level::kInfo;
}

std::string ranks_where(const std::vector<uint64_t>& values, uint64_t wanted) {
  std::vector<std::string> ranks;
  for (size_t r = 0; r < values.size(); ++r)
    if (values[r] == wanted) ranks.push_back(std::to_string(r));
  return text::join(ranks, ",");
}
}  // namespace

ResolvedConfig resolve_config_on_all_ranks(const World& world, const std::string& path,
                                           const std::vector<std::string>& overrides) {
  std::optional<ResolvedConfig> resolved;
  std::string failure;
  try {
    resolved = load_config(path, overrides);
  } catch (const ConfigError& e) {
    failure = e.what();
  }

  // 1. Did every rank load it? Identical failures are printed once (by the lowest failing rank,
  //    without a rank prefix when all ranks failed alike); differing ones by each failing rank.
  std::vector<std::string> failures = world.size() > 1 ? world.all_gather(failure) : std::vector<std::string>{failure};
  std::vector<int> failed_ranks;
  for (size_t r = 0; r < failures.size(); ++r)
    if (!failures[r].empty()) failed_ranks.push_back(static_cast<int>(r));
  if (!failed_ranks.empty()) {
    bool all_alike = failed_ranks.size() == failures.size();
    for (const auto& f : failures) all_alike = all_alike && f == failures[0];
    if (all_alike) {
      if (world.is_root()) std::fprintf(stderr, "error: %s\n", failure.c_str());
    } else if (!failure.empty()) {
      log::error(failure);
    } else if (world.rank() == (failed_ranks[0] == 0 ? 1 : 0)) {
      std::vector<std::string> names;
      for (int r : failed_ranks) names.push_back(std::to_string(r));
      log::error("the config failed to load on rank(s) " + text::join(names, ",") + " (their errors are above)");
    }
    std::fflush(stderr);
    throw CollectiveError(failures[static_cast<size_t>(failed_ranks[0])], kExitUsage, /*already_reported=*/true);
  }

  // 2. Did every rank resolve the same config? (Different --set flags or files per rank.)
  if (world.size() > 1) {
    std::vector<uint64_t> hashes = world.all_gather(resolved->hash());
    bool same = true;
    for (uint64_t h : hashes) same = same && h == hashes[0];
    if (!same) {
      std::string per_rank;
      for (size_t r = 0; r < hashes.size(); ++r)
        per_rank += (r ? ", " : "") + std::to_string(r) + "=" + text::hex64(hashes[r]).substr(0, 8);
      log::error("the ranks resolved different configs (hash by rank: " + per_rank + "; this rank matches rank(s) " +
                 ranks_where(hashes, hashes[static_cast<size_t>(world.rank())]) +
                 "); launch every rank with the same --config file and --set flags");
      std::fflush(stderr);
      throw CollectiveError("config differs across ranks", kExitUsage, /*already_reported=*/true);
    }
  }

  log::set_level(to_log_level(resolved->config.log.level));
  log::set_all_ranks(resolved->config.log.all_ranks);
  return *resolved;
}

}  // namespace modtrain
