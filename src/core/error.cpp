#include <mpi.h>

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

}  // namespace modtrain
