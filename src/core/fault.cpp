#include "modtrain/core/fault.h"

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>
#include <thread>

#include "modtrain/core/error.h"

namespace modtrain::fault {
namespace {
struct UnknownFault {};
}  // namespace

void point(const char* name) {
  static const char* armed = std::getenv("MODTRAIN_FAULT");
  if (!armed) return;
  const size_t n = std::strlen(name);
  if (std::strncmp(armed, name, n) != 0) return;
  if (armed[n] == '\0') std::raise(SIGKILL);
  if (std::strcmp(armed + n, ":unknown") == 0) throw UnknownFault{};  // not a std::exception: the catch-alls
  if (std::strcmp(armed + n, ":terminate") == 0) std::terminate();    // the last-resort handler
  if (std::strcmp(armed + n, ":slow") == 0) {  // widen a window for a test that kills at random moments
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    return;
  }
  if (std::strcmp(armed + n, ":enospc") == 0)
    throw UserError(std::string("cannot write (fault point ") + name + "): No space left on device (the disk is full)",
                    kExitRuntime);
}

bool corrupt(const char* name) {
  static const char* armed = std::getenv("MODTRAIN_FAULT");
  if (!armed) return false;
  const size_t n = std::strlen(name);
  return std::strncmp(armed, name, n) == 0 && std::strcmp(armed + n, ":corrupt") == 0;
}

}  // namespace modtrain::fault
