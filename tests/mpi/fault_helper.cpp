// Fault injection for the job-teardown tests: the rank given by --fail-rank throws while every
// other rank waits in a barrier that would never complete. The job must still end promptly,
// with the failing rank's "[rank R] error: ..." line and a non-zero exit code.
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

#include "modtrain/core/error.h"
#include "modtrain/dist/guard.h"

int main(int argc, char** argv) {
  int fail_rank = 1;
  for (int i = 1; i + 1 < argc; ++i)
    if (std::strcmp(argv[i], "--fail-rank") == 0) fail_rank = std::atoi(argv[i + 1]);
  modtrain::World world;
  return modtrain::run_guarded(world, [&] {
    if (world.rank() == fail_rank) {
      std::this_thread::sleep_for(std::chrono::milliseconds(300));  // the others are blocked by now
      throw modtrain::UserError("injected failure on rank " + std::to_string(fail_rank), modtrain::kExitRuntime);
    }
    world.barrier();
    return 0;
  });
}
