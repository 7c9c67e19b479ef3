#include "modtrain/train/run_dir.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iterator>
#include <random>

#include "modtrain/core/error.h"
#include "modtrain/core/fault.h"
#include "modtrain/core/log.h"
#include "modtrain/io/files.h"

namespace modtrain {

RunDir::RunDir(std::string dir, bool writer) : dir_(std::move(dir)), writer_(writer) {
  if (!writer_) return;
  std::error_code ec;
  std::filesystem::create_directories(dir_, ec);
  if (ec) {  // a bad path (a parent that is a file, no permission) is a usage error; a full disk is not
    const bool disk = ec == std::errc::no_space_on_device || ec == std::errc::io_error;
    throw UserError("run.dir: cannot create " + dir_ + ": " + ec.message() +
                        (disk ? "" : "; check the path: every parent must be a directory you can write to"),
                    disk ? kExitRuntime : kExitUsage);
  }
  metrics_.open(path("metrics.jsonl"), std::ios::app);
  if (!metrics_) throw UserError("run.dir: cannot write " + path("metrics.jsonl"), kExitRuntime);
}

std::string RunDir::path(const std::string& name) const { return (std::filesystem::path(dir_) / name).string(); }

void RunDir::write_config(const std::string& yaml) {
  if (writer_) io::write_file_atomic(path("config.yaml"), yaml);
}

void RunDir::append_metrics(const std::string& json_line) {
  if (!writer_) return;
  metrics_ << json_line << '\n';
  metrics_.flush();
  if (!metrics_) throw UserError("cannot write " + path("metrics.jsonl") + " (disk full?)", kExitRuntime);
}

RunDirLock RunDirLock::acquire(const std::string& dir, const std::string& host) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return {};  // RunDir says why the directory cannot be made
  const std::string file = (std::filesystem::path(dir) / ".lock").string();
  RunDirLock lock;
  lock.fd_ = ::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (lock.fd_ < 0) return {};  // a read-only run.dir: RunDir reports it
  // MODTRAIN_FAULT=run-dir-flock:corrupt: a filesystem without flock (Lustre mounted noflock).
  const bool refused = fault::corrupt("run-dir-flock");
  if (refused || ::flock(lock.fd_, LOCK_EX | LOCK_NB) != 0) {
    const int err = refused ? ENOLCK : errno;
    char holder[256] = {0};
    const ssize_t n = ::pread(lock.fd_, holder, sizeof holder - 1, 0);
    std::string who = n > 0 ? std::string(holder, static_cast<size_t>(n)) : std::string();
    while (!who.empty() && (who.back() == '\n' || who.back() == ' ')) who.pop_back();
    if (err != EWOULDBLOCK) {  // a filesystem without flock: run unlocked rather than not at all, and say so
      log::warn("run.dir " + dir + ": the filesystem refused a lock on " + file + " (" + std::strerror(err) +
                "), so nothing stops a second training run from writing into this run.dir; run one job per " +
                "run.dir (on Lustre, mount with -o flock; docs/checkpoints.md)");
      return lock;
    }
    throw UserError("run.dir " + dir + " is in use by another training run (" +
                    (who.empty() ? std::string("holder unknown") : who) +
                    "); wait for it to finish, or give this run another run.dir");
  }
  const std::string me = "host " + host + ", pid " + std::to_string(::getpid()) + "\n";
  if (::ftruncate(lock.fd_, 0) == 0 && ::pwrite(lock.fd_, me.data(), me.size(), 0) < 0) { /* the name is a courtesy */
  }
  return lock;
}

std::string write_run_id(const std::string& dir, const std::string& host) {
  std::random_device entropy;
  const uint64_t nonce = (static_cast<uint64_t>(entropy()) << 32) ^ entropy() ^
                         static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
  const std::string id =
      "host " + host + ", pid " + std::to_string(::getpid()) + ", start " + std::to_string(nonce) + "\n";
  try {
    io::write_file_atomic((std::filesystem::path(dir) / ".run-id").string(), id);
  } catch (const std::exception&) {
    return "";  // a run.dir that cannot be written: RunDir says why
  }
  return id;
}

std::string read_run_id(const std::string& dir) {
  std::ifstream in(std::filesystem::path(dir) / ".run-id", std::ios::binary);
  std::string id((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return in.bad() ? std::string() : id;
}

RunDirLock& RunDirLock::operator=(RunDirLock&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = other.fd_;
    other.fd_ = -1;
  }
  return *this;
}

RunDirLock::~RunDirLock() {
  if (fd_ >= 0) ::close(fd_);  // releases the flock
}

namespace {
// mpirun gives its ranks a pseudo-terminal even when its own output goes to a file (a Slurm log),
// so under a launcher a live (carriage-return) line would garble the log: plain lines instead.
bool under_launcher() {
  for (const char* var : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "SLURM_PROCID"})
    if (std::getenv(var)) return true;
  return false;
}
}  // namespace

ProgressLine::ProgressLine(bool enabled)
    : enabled_(enabled), live_(enabled && ::isatty(STDOUT_FILENO) && !under_launcher()) {}

void ProgressLine::update(int64_t step, int64_t total, double loss, double lr, double tokens_per_s, double eta_s,
                          const std::string& extra) {
  if (!enabled_) return;
  int eta = static_cast<int>(eta_s);
  std::printf("%sstep %lld/%lld  loss %.4f%s%s  lr %.2e  %.0f tok/s  eta %d:%02d:%02d%s", live_ ? "\r" : "",
              static_cast<long long>(step), static_cast<long long>(total), loss, extra.empty() ? "" : "  ",
              extra.c_str(), lr, tokens_per_s, eta / 3600, eta / 60 % 60, eta % 60, live_ ? "   " : "\n");
  std::fflush(stdout);
}

void ProgressLine::finish() {
  if (live_) std::printf("\n");
}

}  // namespace modtrain
