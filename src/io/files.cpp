#include "modtrain/io/files.h"

#include <fcntl.h>
#include <ftw.h>
#include <openssl/evp.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#include "modtrain/core/error.h"

namespace modtrain::io {
namespace {
std::string errno_text() { return std::strerror(errno); }
}  // namespace

void fsync_path(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) throw UserError("cannot open " + path + " to sync it: " + errno_text(), kExitRuntime);
  int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) throw UserError("fsync failed for " + path + ": " + errno_text(), kExitRuntime);
}

void write_file_atomic(const std::string& path, const std::vector<std::string_view>& parts) {
  namespace fs = std::filesystem;
  std::string tmp = path + ".tmp." + std::to_string(::getpid());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0)
    throw UserError("cannot write " + tmp + ": " + errno_text() + " (is the directory writable?)", kExitRuntime);
  for (std::string_view part : parts) {
    size_t written = 0;
    while (written < part.size()) {
      // At most 1 GiB per call: Linux writes at most ~2 GiB per write(2) anyway.
      ssize_t n = ::write(fd, part.data() + written, std::min<size_t>(part.size() - written, size_t{1} << 30));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        std::string why = errno_text();
        ::close(fd);
        ::unlink(tmp.c_str());
        throw UserError("cannot write " + tmp + ": " + why + " (disk full?)", kExitRuntime);
      }
      written += static_cast<size_t>(n);
    }
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    ::unlink(tmp.c_str());
    throw UserError("cannot flush " + tmp + ": " + errno_text(), kExitRuntime);
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    ::unlink(tmp.c_str());
    throw UserError("cannot rename " + tmp + " to " + path + ": " + errno_text(), kExitRuntime);
  }
  fs::path dir = fs::path(path).parent_path();
  fsync_path(dir.empty() ? "." : dir.string());
}

void write_file_atomic(const std::string& path, const std::string& content) {
  write_file_atomic(path, std::vector<std::string_view>{content});
}

void remove_tree(const std::string& path) {
  auto remove_entry = [](const char* entry, const struct stat*, int, struct FTW*) { return ::remove(entry); };
  ::nftw(path.c_str(), remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

std::string describe_path(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return errno == ENOENT ? "missing" : "unreadable (" + errno_text() + ")";
  if (S_ISREG(st.st_mode)) return "a regular file";
  if (S_ISDIR(st.st_mode)) return "a directory";
  if (S_ISFIFO(st.st_mode)) return "a FIFO (named pipe)";
  if (S_ISCHR(st.st_mode)) return "a character device";
  if (S_ISBLK(st.st_mode)) return "a block device";
  if (S_ISSOCK(st.st_mode)) return "a socket";
  return "not a regular file";
}

bool read_line_capped(std::istream& in, std::string& out, uint64_t cap, uint64_t& length, char counted,
                      uint64_t* count) {
  constexpr std::streamsize kChunk = 1 << 16;
  char chunk[kChunk];
  out.clear();
  length = 0;
  for (bool any = false;;) {
    in.getline(chunk, kChunk);
    const auto got = static_cast<uint64_t>(in.gcount());
    const bool eof = in.eof(), full = !eof && in.fail() && got == static_cast<uint64_t>(kChunk - 1);
    if (got == 0 && eof) return any;             // nothing left (a last line without '\n' ended the call before)
    if (!eof && !full && in.fail()) return any;  // a read error: as std::getline, the end
    any = true;
    const uint64_t stored = (eof || full) ? got : got - 1;  // gcount counts the '\n' it extracted
    if (count) *count += static_cast<uint64_t>(std::count(chunk, chunk + stored, counted));
    if (length < cap) out.append(chunk, static_cast<size_t>(std::min<uint64_t>(stored, cap - length)));
    length += stored;
    if (!full) return true;
    in.clear(in.rdstate() & ~std::ios::failbit);  // a long line: read on
  }
}

std::string read_file(const std::string& path, size_t max_bytes, const std::string& what) {
  // O_NONBLOCK: opening a FIFO without a writer would otherwise wait forever.
  int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    const bool missing = errno == ENOENT;
    throw UserError("cannot read " + what + " " + path + ": " + errno_text() +
                    (missing ? " (check the path)" : " (check the permissions)"));
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    throw UserError(what + " " + path + " is " + describe_path(path) + ", not a regular file; give the path of a file");
  }
  if (static_cast<uint64_t>(st.st_size) > max_bytes) {
    ::close(fd);
    throw UserError(what + " " + path + " is " + std::to_string(st.st_size >> 20) + " MiB, more than the " +
                    std::to_string(max_bytes >> 20) + " MiB a " + what + " may have; is this the right file?");
  }
  std::string out;
  out.reserve(static_cast<size_t>(st.st_size));
  char buffer[1 << 16];
  for (;;) {
    ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      std::string why = errno_text();
      ::close(fd);
      throw UserError("cannot read " + what + " " + path + ": " + why, kExitRuntime);
    }
    if (n == 0) break;
    out.append(buffer, static_cast<size_t>(n));
    if (out.size() > max_bytes) {  // a file that grows, or a /proc file whose size says 0
      ::close(fd);
      throw UserError(what + " " + path + " has more than the " + std::to_string(max_bytes >> 20) + " MiB a " + what +
                      " may have; is this the right file?");
    }
  }
  ::close(fd);
  return out;
}

bool same_file(const std::string& a, const std::string& b) {
  struct stat sa {
  }, sb{};
  if (::stat(a.c_str(), &sa) != 0 || ::stat(b.c_str(), &sb) != 0) return false;
  return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

void refuse_output_onto_input(const std::string& output, const std::vector<std::string>& inputs,
                              const std::string& flag) {
  for (const auto& input : inputs)
    if (input != "-" && output != "-" && same_file(output, input))
      throw UserError(flag + " " + output + " is the same file as the input " + input +
                      "; writing it would destroy what is being read: choose another output path");
}

std::string printable(std::string_view text, size_t max) {
  std::string out;
  size_t i = 0;
  while (i < text.size() && out.size() < max) {
    const auto c = static_cast<unsigned char>(text[i]);
    // a well-formed multi-byte UTF-8 sequence passes as it is
    size_t len = c >= 0xF0 && c < 0xF5 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 && c < 0xE0 ? 2 : 1;
    bool valid = len > 1 && i + len <= text.size();
    for (size_t k = 1; valid && k < len; ++k) valid = (static_cast<unsigned char>(text[i + k]) & 0xC0) == 0x80;
    if (valid) {
      out.append(text.substr(i, len));
      i += len;
      continue;
    }
    if (c >= 0x20 && c < 0x7F && c != '\\') out.push_back(static_cast<char>(c));
    else {
      char hex[8];
      std::snprintf(hex, sizeof hex, "\\x%02x", c);
      out += hex;
    }
    ++i;
  }
  if (i < text.size()) out += "...";
  return out;
}

Output::Output(const std::string& path, const std::vector<std::string>& inputs, const std::string& flag) : path_(path) {
  if (path.empty()) throw UserError(flag + ": an empty path; give a file, or - for standard output");
  if (is_stdout()) {
    file_ = stdout;
    return;
  }
  refuse_output_onto_input(path, inputs, flag);
  struct stat st {};
  const bool special = ::stat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode);
  if (special && S_ISDIR(st.st_mode)) throw UserError(flag + " " + path + " is a directory; give a file path");
  tmp_ = special ? "" : path + ".tmp." + std::to_string(::getpid());
  file_ = std::fopen(special ? path.c_str() : tmp_.c_str(), "wb");
  if (!file_)
    throw UserError(
        flag + ": cannot write " + path + ": " + errno_text() + " (does the directory exist, is it writable?)",
        kExitRuntime);
}

Output::~Output() {
  if (file_ && !is_stdout()) std::fclose(file_);
  if (!committed_ && !tmp_.empty()) ::unlink(tmp_.c_str());
}

void Output::fail(const std::string& doing, int error) {
  const std::string what = is_stdout() ? "standard output" : path_;
  throw UserError("cannot " + doing + " " + what + ": " + std::strerror(error) +
                      (error == ENOSPC || error == EDQUOT ? " (the disk is full)" : ""),
                  kExitRuntime);
}

void Output::write(std::string_view text) {
  if (text.empty()) return;
  errno = 0;
  if (std::fwrite(text.data(), 1, text.size(), file_) != text.size()) fail("write", errno ? errno : EIO);
}

void Output::commit() {
  if (committed_) return;
  errno = 0;
  if (std::fflush(file_) != 0 || std::ferror(file_)) fail("write", errno ? errno : EIO);
  committed_ = true;
  if (is_stdout()) return;
  const int fd = ::fileno(file_);
  if (!tmp_.empty() && ::fsync(fd) != 0) fail("flush", errno);
  const int closed = std::fclose(file_);
  file_ = nullptr;
  if (closed != 0) fail("close", errno);
  if (tmp_.empty()) return;
  if (::rename(tmp_.c_str(), path_.c_str()) != 0) {
    const int error = errno;
    ::unlink(tmp_.c_str());
    fail("rename the finished output onto", error);
  }
}

void finish_stdout() {
  errno = 0;
  const bool flushed = std::fflush(stdout) == 0;
  const int error = errno;
  if (flushed && !std::ferror(stdout)) return;
  // An earlier write may have failed (its errno is long gone): say what we know.
  const std::string why = !flushed && error
                              ? std::string(std::strerror(error)) + (error == ENOSPC ? " (the disk is full)" : "")
                              : "a write failed (a full disk, /dev/full or an I/O error)";
  throw UserError("cannot write standard output: " + why + "; the output is incomplete", kExitRuntime);
}

namespace {
std::string finish_sha256(EVP_MD_CTX* ctx) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_DigestFinal_ex(ctx, digest, &length);
  EVP_MD_CTX_free(ctx);
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < length; ++i) {
    out.push_back(hex[digest[i] >> 4]);
    out.push_back(hex[digest[i] & 15]);
  }
  return out;
}
}  // namespace

std::string sha256_file(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode))  // a FIFO would block, /dev/zero never end
    throw UserError("cannot hash " + path + ": it is " + describe_path(path) + ", not a regular file");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw UserError("cannot read " + path + " to hash it");
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr);
  std::vector<char> buffer(1 << 16);
  while (in) {
    in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
    if (in.gcount() > 0) EVP_DigestUpdate(ctx, buffer.data(), static_cast<size_t>(in.gcount()));
  }
  return finish_sha256(ctx);
}

std::string sha256_bytes(std::string_view bytes) {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr);
  EVP_DigestUpdate(ctx, bytes.data(), bytes.size());
  return finish_sha256(ctx);
}

MappedFile::MappedFile(const std::string& path) : path_(path) {
  struct stat before {};
  if (::stat(path.c_str(), &before) == 0 && !S_ISREG(before.st_mode))  // a FIFO would block the open
    throw UserError(path + " is " + describe_path(path) + ", not a regular file (a link to a device or a pipe?)");
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) throw UserError("cannot open " + path + ": " + errno_text());
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    throw UserError("cannot stat " + path + ": " + errno_text());
  }
  size_ = static_cast<size_t>(st.st_size);
  if (size_ > 0) {
    void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      ::close(fd);
      throw UserError("cannot map " + path + ": " + errno_text());
    }
    data_ = static_cast<const uint8_t*>(p);
  }
  ::close(fd);
}

void MappedFile::release_pages() const {
  // A read-only private mapping never copied on write: MADV_DONTNEED only drops page-table entries.
  if (data_) ::madvise(const_cast<uint8_t*>(data_), size_, MADV_DONTNEED);
}

MappedFile::~MappedFile() {
  if (data_) ::munmap(const_cast<uint8_t*>(data_), size_);
}

MappedFile::MappedFile(MappedFile&& other) noexcept
    : path_(std::move(other.path_)), data_(other.data_), size_(other.size_) {
  other.data_ = nullptr;
  other.size_ = 0;
}

MappedFile& MappedFile::operator=(MappedFile&& other) noexcept {
  if (this != &other) {
    if (data_) ::munmap(const_cast<uint8_t*>(data_), size_);
    path_ = std::move(other.path_);
    data_ = other.data_;
    size_ = other.size_;
    other.data_ = nullptr;
    other.size_ = 0;
  }
  return *this;
}

}  // namespace modtrain::io
