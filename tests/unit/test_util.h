// Helpers shared by unit tests: a scratch directory of real files, and the MPI world of one
// process (for the tests that run the multi-rank path at world size 1).
#pragma once

#include <stdlib.h>

#include <filesystem>

#include <fstream>
#include <iterator>
#include <string>
#include "modtrain/dist/world.h"
#include "modtrain/io/files.h"

namespace modtrain::test {

struct TempDir {
  std::filesystem::path path;
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "modtrain-test-XXXXXX").string();
    path = mkdtemp(pattern.data());
  }
  ~TempDir() { io::remove_tree(path.string()); }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string write(const std::string& name, const std::string& text) const {
    std::filesystem::path file = path / name;
    std::filesystem::create_directories(file.parent_path());
    std::ofstream(file, std::ios::binary) << text;
    return file.string();
  }
  std::string file(const std::string& name) const { return (path / name).string(); }
};

// One World per test process (MPI singleton init; inline: shared by every translation unit).
inline World& world() {
  static World w;
  return w;
}

inline std::string read(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

}  // namespace modtrain::test
