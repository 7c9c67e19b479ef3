#include "modtrain/dist/rank0.h"

#include "modtrain/core/error.h"
#include "modtrain/core/log.h"

namespace modtrain {

namespace {
std::string decide(bool root, const std::function<std::string()>& decide,
                   const std::function<std::string(const std::string&)>& from_rank0) {
  std::string message;  // rank 0's outcome: "D<result>" or "E<error>"
  if (root) {
    try {
      message = "D" + decide();
    } catch (const UserError& e) {
      message = "E" + std::string(e.what());
    }
  }
  message = from_rank0(message);
  if (message.empty()) throw InternalError("decide_on_rank0: rank 0's outcome did not arrive");
  if (message[0] == 'E') {
    if (root) log::error(message.substr(1));
    throw CollectiveError(message.substr(1), kExitUsage, /*already_reported=*/true);
  }
  return message.substr(1);
}
}  // namespace

std::string decide_on_rank0(const World& world, const std::function<std::string()>& d) {
  return decide(world.is_root(), d,
                [&](const std::string& m) { return world.size() > 1 ? world.all_gather(m)[0] : m; });
}

std::string decide_on_rank0(Collectives& collectives, const std::string& what, const std::function<std::string()>& d) {
  return decide(collectives.rank() == 0, d,
                [&](const std::string& m) { return collectives.all_gather_text(m, what)[0]; });
}

}  // namespace modtrain
