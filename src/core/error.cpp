#include <mpi.h>
#include <unistd.h>
#include <atomic>

#include <cstdlib>
#include <exception>

#include "modtrain/core/check.h"

namespace modtrain::detail {

namespace {
// Strip the build machine's directories: "src/dist/world.cpp" reads better than an absolute path.
const char* short_path(const char* file) {
  std::string f = file;
  for (const char* root : {"/src/", "/include/", "/tests/"}) {
    size_t pos = f.rfind(root);
    if (pos != std::string::npos) return file + pos + 1;
  }
  return file;
}
}  // namespace

void throw_check_failure(const char* file, int line, const char* expr, const std::string& message) {
  std::ostringstream os;
  os << short_path(file) << ":" << line << ": internal check `" << expr << "` failed";
  if (!message.empty()) os << ": " << message;
  os << " (this is a modtrain bug; please report it with the command line)";
  throw InternalError(os.str());
}

void throw_mpi_failure(const char* file, int line, const char* call, int code) {
  char text[MPI_MAX_ERROR_STRING] = {0};
  int length = 0;
  if (MPI_Error_string(code, text, &length) != MPI_SUCCESS) std::snprintf(text, sizeof text, "code %d", code);
  std::ostringstream os;
  os << short_path(file) << ":" << line << ": MPI call failed: " << call << ": " << text;
  throw InternalError(os.str());
}

}  // namespace modtrain::detail

namespace modtrain {

std::string describe_filesystem_error(const std::filesystem::filesystem_error& e) {
  // what() is "filesystem error: <operation>: <cause> [path1] [path2]": keep the operation.
  std::string operation = e.what();
  const std::string prefix = "filesystem error: ";
  if (operation.rfind(prefix, 0) == 0) operation = operation.substr(prefix.size());
  const std::string cause = e.code().message();
  const size_t at = operation.find(": " + cause);
  if (at != std::string::npos) operation = operation.substr(0, at);
  std::string where = e.path1().string();
  if (!e.path2().empty()) where += " -> " + e.path2().string();
  return (where.empty() ? std::string("a path") : where) + ": " + cause + " (" + operation +
         "); check the path: every parent must be a directory you can write to";
}

std::string describe_current_exception() {
  try {
    throw;
  } catch (const std::exception& e) {
    std::string what = e.what();
    return what.substr(0, what.find('\n'));
  } catch (...) {
    return "an exception of unknown type";
  }
}

namespace {
[[noreturn]] void on_terminate() {
  // Several threads may terminate at once (two prepare workers hitting the same defect): the first
  // reports and exits the process; the others wait for that instead of printing a second line.
  static std::atomic_flag reported = ATOMIC_FLAG_INIT;
  if (reported.test_and_set())
    for (;;) ::pause();
  std::string what = "std::terminate was called with no exception";
  if (std::current_exception()) what = describe_current_exception() + " escaped every handler";
  int initialized = 0, finalized = 0, rank = 0, size = 1;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  const bool mpi = initialized && !finalized;
  if (mpi) {
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
  }
  // Straight to the descriptor: the logger's lock may be held by the thread that is terminating.
  std::string line = (size > 1 ? "[rank " + std::to_string(rank) + "] " : std::string()) +
                     "error: internal error: " + what + " (a modtrain bug; please report it with the command line)" +
                     (size > 1 ? "; stopping every rank" : "") + "\n";
  std::fflush(stdout);
  if (::write(STDERR_FILENO, line.data(), line.size()) < 0) { /* nowhere left to report */
  }
  if (mpi && size > 1) MPI_Abort(MPI_COMM_WORLD, kExitRuntime);
  std::_Exit(kExitRuntime);
}
}  // namespace

void install_terminate_handler() { std::set_terminate(on_terminate); }

}  // namespace modtrain
