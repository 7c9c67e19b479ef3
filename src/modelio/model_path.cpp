#include "modtrain/modelio/model_path.h"

#include <filesystem>

#include "modtrain/core/error.h"
#include "modtrain/io/files.h"

namespace modtrain {

std::string read_pointer_file(const std::string& path) {
  if (!std::filesystem::exists(path)) return "";
  std::string name = io::read_file(path, 4096, "pointer file");  // a step directory's name, nothing more
  while (!name.empty() && (name.back() == '\n' || name.back() == '\r' || name.back() == ' ')) name.pop_back();
  return name;
}

std::string resolve_model_path(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::is_directory(path, ec) || !fs::exists(path, ec)) return path;  // (missing: the loader says so)
  // anything else is read as a pointer file (which refuses FIFOs and devices)
  const std::string name = read_pointer_file(path);
  const fs::path target = fs::path(path).parent_path() / name;
  if (name.empty() || name.find('/') != std::string::npos || !fs::is_directory(target))
    throw UserError(path + ": a pointer file naming '" + io::printable(name) +
                    "', which is not a directory beside it; pass a model or checkpoint directory");
  return target.string();
}

}  // namespace modtrain
