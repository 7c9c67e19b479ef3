#include "modtrain/dist/guard.h"

#include <exception>
#include <string>

#include "modtrain/core/error.h"
#include "modtrain/core/log.h"

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
  try {
    return body();
  } catch (const CollectiveError& e) {
    // Every rank reached this error at the same point: exit together, no abort needed.
    if (!e.already_reported()) log::error(e.what());
    return e.exit_code();
  } catch (const Error& e) {
    log::error(e.what());
    exit_code = e.exit_code();
  } catch (const std::filesystem::filesystem_error& e) {
    log::error(describe_filesystem_error(e));
    exit_code = kExitUsage;
  } catch (const std::bad_alloc&) {
    log::error("out of memory; lower train.micro_batch or data.max_len, or use more ranks");
  } catch (const std::exception& e) {
    log::error(first_line(e.what()));
  } catch (...) {  // not a std::exception: still one line, and the other ranks are stopped
    log::error("internal error: " + describe_current_exception() +
               " (a modtrain bug; please report it with the command line)");
  }
  if (world.size() > 1) world.abort(exit_code);
  return exit_code;
}

}  // namespace modtrain
