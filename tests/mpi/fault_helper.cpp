// Fault injection for the job-teardown tests: the rank given by --fail-rank throws while every
// other rank waits in a barrier that would never complete. The job must still end promptly,
// with the failing rank's "[rank R] error: ..." line and a non-zero exit code.
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

#include <torch/torch.h>

#include "modtrain/core/error.h"
#include "modtrain/dist/communicator.h"
#include "modtrain/dist/guard.h"

int main(int argc, char** argv) {
  // --fail-rank R: rank R throws while the others wait in a barrier.
  // --stall-rank R --timeout S: rank R sleeps past the watchdog before joining an all-reduce.
  int fail_rank = -1, stall_rank = -1;
  double timeout = 5;
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::strcmp(argv[i], "--fail-rank") == 0) fail_rank = std::atoi(argv[i + 1]);
    if (std::strcmp(argv[i], "--stall-rank") == 0) stall_rank = std::atoi(argv[i + 1]);
    if (std::strcmp(argv[i], "--timeout") == 0) timeout = std::atof(argv[i + 1]);
  }
  modtrain::World world;
  if (stall_rank >= 0) {
    return modtrain::run_guarded(world, [&] {
      auto comm = modtrain::make_mpi_communicator(world, {timeout, nullptr});
      torch::Tensor t = torch::ones({1000});
      if (world.rank() == stall_rank) std::this_thread::sleep_for(std::chrono::duration<double>(timeout * 4));
      comm->all_reduce(t, modtrain::ReduceOp::kSum, "gradient bucket 0 (test)");
      return 0;
    });
  }
  return modtrain::run_guarded(world, [&] {
    if (world.rank() == fail_rank) {
      std::this_thread::sleep_for(std::chrono::milliseconds(300));  // the others are blocked by now
      throw modtrain::UserError("injected failure on rank " + std::to_string(fail_rank), modtrain::kExitRuntime);
    }
    world.barrier();
    return 0;
  });
}
