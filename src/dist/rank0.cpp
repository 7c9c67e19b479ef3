#include "modtrain/dist/rank0.h"

#include <string>
#include <vector>

#include "modtrain/core/error.h"
#include "modtrain/core/log.h"

namespace modtrain {

namespace {
// An outcome on the wire: "D<result>" or "E<error>".
std::string encode(const std::function<std::string()>& decide) {
  try {
    return "D" + decide();
  } catch (const UserError& e) {
    return "E" + std::string(e.what());
  }
}
// The result of an outcome; an error becomes the same CollectiveError on every rank, logged by rank 0.
std::string decode(bool root, const std::string& message) {
  if (message.empty()) throw InternalError("decide: an outcome did not arrive");
  if (message[0] == 'E') {
    if (root) log::error(message.substr(1));
    throw CollectiveError(message.substr(1), kExitUsage, /*already_reported=*/true);
  }
  return message.substr(1);
}

std::string decide(bool root, const std::function<std::string()>& decide,
                   const std::function<std::string(const std::string&)>& from_rank0) {
  return decode(root, from_rank0(root ? encode(decide) : std::string()));
}
}  // namespace

std::string decide_on_all_ranks(const World& world, const std::function<std::pair<uint64_t, std::string>()>& d) {
  const std::string mine = encode([&] {  // "<order>\t<answer>", or "" when nothing was found
    const auto [order, answer] = d();
    return answer.empty() ? std::string() : std::to_string(order) + "\t" + answer;
  });
  const std::vector<std::string> all = world.size() > 1 ? world.all_gather(mine) : std::vector<std::string>{mine};
  for (const std::string& outcome : all)  // any error first, the same one on every rank
    if (outcome.empty() || outcome[0] == 'E') decode(world.is_root(), outcome);
  std::string best;
  uint64_t lowest = UINT64_MAX;
  for (const std::string& outcome : all) {
    const std::string found = decode(world.is_root(), outcome);
    if (found.empty()) continue;
    const size_t tab = found.find('\t');
    const uint64_t order = std::stoull(found.substr(0, tab));
    if (order < lowest) lowest = order, best = found.substr(tab + 1);
  }
  return best;
}

std::string decide_on_rank0(const World& world, const std::function<std::string()>& d) {
  return decide(world.is_root(), d,
                [&](const std::string& m) { return world.size() > 1 ? world.all_gather(m)[0] : m; });
}

std::string decide_on_rank0(Collectives& collectives, const std::string& what, const std::function<std::string()>& d) {
  return decide(collectives.rank() == 0, d,
                [&](const std::string& m) { return collectives.all_gather_text(m, what)[0]; });
}

}  // namespace modtrain
