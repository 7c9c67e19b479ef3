// File helpers: atomic writes (temp file, fsync, rename), read-only memory maps, SHA-256.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <istream>
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

// The default cap of read_file: far above any config, vocabulary, tokenizer.json or pointer file,
// far below what a mistaken path (a device, a dataset) would make us allocate.
constexpr size_t kMaxReadBytes = size_t{256} << 20;

// Reads a whole regular file. Refuses what is not one (a directory, a FIFO that would block, a
// character device such as /dev/zero that never ends, a socket) and files over `max_bytes`;
// a read error (EIO, EISDIR ...) is an error naming the cause, never an empty string. `what` names
// the file's role in messages ("config file", "vocab"). Throws UserError naming the path.
std::string read_file(const std::string& path, size_t max_bytes = kMaxReadBytes, const std::string& what = "file");

// One line of `in` without its '\n' (std::getline's rules), keeping at most `cap` bytes of it: the
// rest of a longer line is read past in 64 KB chunks, never held. `length` is the line's full size
// (> cap: it was cut). When `count` is given, the occurrences of `counted` in the whole line are
// added to it (CSV's quote parity). False at the end of the input.
bool read_line_capped(std::istream& in, std::string& out, uint64_t cap, uint64_t& length, char counted = '\0',
                      uint64_t* count = nullptr);

// What a path is, for messages: "a directory", "a FIFO", "a character device", "missing" ...
std::string describe_path(const std::string& path);

// True when both paths name the same existing file (same device and inode after resolving links).
bool same_file(const std::string& a, const std::string& b);

// Throws UserError when `output` is the same file as one of `inputs` ("-" never is): writing it
// would destroy what is being read. `flag` names the output in the message ("--output").
void refuse_output_onto_input(const std::string& output, const std::vector<std::string>& inputs,
                              const std::string& flag);

// `text` made safe to print on one line: control and non-UTF-8 bytes as \xNN, cut to `max` bytes.
std::string printable(std::string_view text, size_t max = 80);

// Removes a directory tree (like `rm -rf`; no error when it does not exist). Used instead of
// std::filesystem::remove_all, which PyTorch's LibTorch wheels export in a broken copy that
// crashes when an executable binds to it (seen on the GPU machine with torch 2.11).
void remove_tree(const std::string& path);

// SHA-256 of a file's bytes, lowercase hex (OpenSSL).
std::string sha256_file(const std::string& path);
// SHA-256 of bytes in memory, lowercase hex.
std::string sha256_bytes(std::string_view bytes);

// An output file, or standard output for "-". A regular file is written under a temporary name
// beside it and renamed over `path` by commit() after an fsync, so a run that fails leaves the old
// file (or none) in place, never half of a new one; a device or FIFO (/dev/null, a pipe) is
// written in place. Every write is checked: a full disk, /dev/full or an I/O error is one error
// naming the output and the cause. Refuses a `path` that is the same file as one of `inputs`
// (after resolving links): writing it would destroy what is being read.
class Output {
 public:
  Output(const std::string& path, const std::vector<std::string>& inputs, const std::string& flag = "--output");
  ~Output();  // without commit(): the temporary file is removed
  Output(const Output&) = delete;
  Output& operator=(const Output&) = delete;

  void write(std::string_view text);
  void commit();
  bool is_stdout() const { return path_ == "-"; }
  const std::string& path() const { return path_; }

 private:
  [[noreturn]] void fail(const std::string& doing, int error);
  std::string path_, tmp_;
  std::FILE* file_ = nullptr;
  bool committed_ = false;
};

// Flushes standard output and reports a write error on it (disk full, /dev/full, EIO) as an
// error naming the cause; commands whose product is standard output end with this.
void finish_stdout();

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
  // Unmaps the pages this process has touched (they stay in the page cache; the next read maps them
  // again). A reader of scattered records calls it so that its mapped pages stay what it reads now:
  // a touch maps a whole page-cache folio (up to megabytes with large folios), not a 4 KB page.
  void release_pages() const;

 private:
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace modtrain::io
