// The MPI watchdog shared by the data plane (mpi_communicator.cpp) and the control plane
// (collectives.cpp): polls a non-blocking request until it completes or a deadline passes.
#pragma once

#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>

#include "modtrain/core/check.h"

namespace modtrain::detail {

// True when the request completed, false when `timeout_s` passed first (the request is left
// pending: the caller reports and the job is aborted).
inline bool mpi_wait_bounded(MPI_Request* request, double timeout_s) {
  // Open MPI progresses a non-blocking collective only inside MPI calls, so the request is polled;
  // every poll is CPU taken from the compute thread when a rank has one core. A few quick polls
  // (short collectives), then sleeps that double from 20 us to 1 ms (a rank waiting for a slow
  // one wakes 1,000 times a second, not 20,000). Measured with bench_peer's "other threads" CPU on
  // the tiny step at 2 ranks x 1 core: 15 ms per step, nearly all of it the reduction itself
  // (summing and copying the 17.6 MB of gradients), the same work gloo's thread does for DDP.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  int flag = 0;
  int64_t sleep_us = 20;
  for (int polls = 0;; ++polls) {
    MPI_CHECK(MPI_Test(request, &flag, MPI_STATUS_IGNORE));
    if (flag) return true;
    if (std::chrono::steady_clock::now() > deadline) return false;
    if (polls < 32) {
      std::this_thread::yield();
    } else {
      std::this_thread::sleep_for(std::chrono::microseconds(sleep_us));
      sleep_us = std::min<int64_t>(2 * sleep_us, 1000);
    }
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
