// File helpers: atomic writes (temp file, fsync, rename), read-only memory maps, SHA-256.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace modtrain::io {

// Writes `content` to `path` atomically: a crash leaves either the old file or the new one.
void write_file_atomic(const std::string& path, const std::string& content);
// The same for content in pieces (written in order without first joining them: large tensors).
void write_file_atomic(const std::string& path, const std::vector<std::string_view>& parts);

// fsync a file or directory by path (a directory after a rename makes the rename durable).
void fsync_path(const std::string& path);

std::string read_file(const std::string& path);  // throws UserError naming the path

// Removes a directory tree (like `rm -rf`; no error when it does not exist). Used instead of
// std::filesystem::remove_all, which PyTorch's LibTorch wheels export in a broken copy that
// crashes when an executable binds to it (seen on the GPU machine with torch 2.11).
void remove_tree(const std::string& path);

// SHA-256 of a file's bytes, lowercase hex (OpenSSL).
std::string sha256_file(const std::string& path);

// A read-only memory map of a whole file. Empty files map to size 0 with data() == nullptr.
class MappedFile {
 public:
  explicit MappedFile(const std::string& path);  // throws UserError
  ~MappedFile();
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace modtrain::io
