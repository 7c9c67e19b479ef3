// Runs work on a few threads and brings an exception thrown on any of them to the caller: a bad
// record or a parser error in a worker becomes the caller's exception (one clear line, the
// command's exit code), never std::terminate. std::thread alone would abort the process.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

namespace modtrain {

// Calls work(t) for t in [0, threads): t = 0 on the calling thread, the others on new threads.
// Joins them all, then rethrows the exception of the lowest-numbered thread that threw (so the
// error a user sees does not depend on scheduling when several threads fail).
inline void run_parallel(int threads, const std::function<void(int)>& work) {
  if (threads < 1) threads = 1;
  std::vector<std::exception_ptr> errors(static_cast<size_t>(threads));
  auto guarded = [&](int t) {
    try {
      work(t);
    } catch (...) {
      errors[static_cast<size_t>(t)] = std::current_exception();
    }
  };
  std::vector<std::thread> pool;
  pool.reserve(static_cast<size_t>(threads - 1));
  for (int t = 1; t < threads; ++t) pool.emplace_back(guarded, t);
  guarded(0);
  for (auto& th : pool) th.join();
  for (const auto& e : errors)
    if (e) std::rethrow_exception(e);
}

// Calls fn() on a helper thread and waits at most `timeout_s` for it: its result, or nullopt when
// it had not returned by then. The helper then runs on, detached: fn was moved into it and its
// result slot is shared, so nothing of the caller's frame is touched after this returns. For a
// call that can block without a timeout of its own (ncclCommFinalize on a blocking communicator
// while a peer is gone): the caller must then leave alone whatever fn still uses (NCCL forbids a
// second call, such as ncclCommAbort, on a communicator while another is in progress on it) and
// say so. An exception from fn is rethrown here.
template <class R>
std::optional<R> call_with_deadline(std::function<R()> fn, double timeout_s) {
  struct Shared {
    std::atomic<bool> done{false};
    std::optional<R> result;
    std::exception_ptr error;
  };
  auto shared = std::make_shared<Shared>();
  std::thread helper([shared, fn = std::move(fn)] {
    try {
      shared->result = fn();
    } catch (...) {
      shared->error = std::current_exception();
    }
    shared->done.store(true, std::memory_order_release);
  });
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  auto pause = std::chrono::microseconds(50);
  while (!shared->done.load(std::memory_order_acquire) && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::microseconds(2000));
  }
  if (!shared->done.load(std::memory_order_acquire)) {
    helper.detach();
    return std::nullopt;
  }
  helper.join();
  if (shared->error) std::rethrow_exception(shared->error);
  return std::move(shared->result);
}

}  // namespace modtrain
