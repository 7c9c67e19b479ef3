// Runs work on a few threads and brings an exception thrown on any of them to the caller: a bad
// record or a parser error in a worker becomes the caller's exception (one clear line, the
// command's exit code), never std::terminate. std::thread alone would abort the process.
#pragma once

#include <exception>
#include <functional>
#include <thread>
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

}  // namespace modtrain
