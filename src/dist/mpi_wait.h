// The MPI watchdog shared by the data plane (mpi_communicator.cpp) and the control plane
// (collectives.cpp): polls a non-blocking request until it completes or a deadline passes.
#pragma once

#include <mpi.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <thread>

#include "modtrain/core/check.h"

namespace modtrain::detail {

// True when the request completed, false when `timeout_s` passed first (the request is left
// pending: the caller reports and the job is aborted).
inline bool mpi_wait_bounded(MPI_Request* request, double timeout_s) {
  // Open MPI progresses a non-blocking collective only inside MPI calls, so the request is polled:
  // yields first, then 50 us sleeps. Sleeps that doubled to 1 ms (to spare a 1-core rank's CPU)
  // slowed `modtrain train` on 2 ranks by 10-15% (the all-reduce advanced less often) without
  // measurably saving CPU: the communication thread's ~15 ms per tiny step at 2 ranks is the
  // reduction itself (docs/performance.md).
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  int flag = 0;
  for (int polls = 0;; ++polls) {
    MPI_CHECK(MPI_Test(request, &flag, MPI_STATUS_IGNORE));
    if (flag) return true;
    if (std::chrono::steady_clock::now() > deadline) return false;
    if (polls < 1000) std::this_thread::yield();
    else std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
}

inline std::string watchdog_message(const std::string& what, size_t bytes, double timeout_s) {
  char size[32];
  std::snprintf(size, sizeof size, "%.2f MB", static_cast<double>(bytes) / 1e6);
  return "watchdog: " + what + " (" + size +
         ") did not complete within dist.timeout_s = " + std::to_string(static_cast<int>(timeout_s)) +
         " s; another rank is stalled, has died or is at a different step (see its log)";
}

}  // namespace modtrain::detail
