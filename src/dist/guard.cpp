#include "modtrain/dist/guard.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <exception>
#include <string>
#include <thread>

#include "modtrain/core/error.h"
#include "modtrain/core/log.h"
#include "modtrain/core/signals.h"

namespace modtrain {
namespace {
// Library exceptions (LibTorch's c10::Error, yaml-cpp ...) put a backtrace or context after the
// first line; users get the first line.
std::string first_line(const char* what) {
  std::string s = what ? what : "";
  size_t nl = s.find('\n');
  return nl == std::string::npos ? s : s.substr(0, nl);
}
}  // namespace

int run_guarded(const World& world, const std::function<int()>& body) {
  int exit_code = kExitRuntime;
  std::string error;
  try {
    return body();
  } catch (const CollectiveError& e) {
    // Every rank reached this error at the same point: exit together, no abort needed.
    if (!e.already_reported()) log::error(e.what());
    return e.exit_code();
  } catch (const Error& e) {
    error = e.what();
    exit_code = e.exit_code();
  } catch (const std::filesystem::filesystem_error& e) {
    error = describe_filesystem_error(e);
    exit_code = kExitUsage;
  } catch (const std::bad_alloc&) {
    error = "out of memory; lower train.micro_batch or data.max_len, or use more ranks";
  } catch (const std::exception& e) {
    error = first_line(e.what());
  } catch (...) {  // not a std::exception: still one line, and the other ranks are stopped
    error =
        "internal error: " + describe_current_exception() + " (a modtrain bug; please report it with the command line)";
  }
  // An error met by one rank alone; several ranks often meet the same one at once (two ranks
  // reading records of the same corrupt block). The lower the rank the sooner it reports: rank r
  // waits 0.2 s + 2 ms x r (at most 2.2 s) first, and if meanwhile another rank's abort reaches it
  // (mpirun stops the ranks with SIGTERM, which install_handlers() catches), the job is already
  // being stopped with that rank's line: it exits without printing its copy. (No collective can
  // decide who reports: the other ranks are inside whatever collective this rank never joins.)
  if (world.size() > 1 && world.rank() > 0) {
    const bool stopping = signals::stop_requested();  // a stop that came before the error is not an abort
    const auto until =
        std::chrono::steady_clock::now() + std::chrono::milliseconds(200 + 2 * std::min(world.rank(), 1000));
    while (std::chrono::steady_clock::now() < until) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
      if (!stopping && signals::stop_requested()) std::_Exit(exit_code);
    }
  }
  log::error(error);
  if (world.size() > 1) world.abort(exit_code);
  return exit_code;
}

}  // namespace modtrain
