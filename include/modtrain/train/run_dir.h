// The run directory (run.dir): the resolved config, metrics.jsonl (one JSON object per log or
// eval event), the final model; and rank 0's progress display (a live line on a terminal, plain
// periodic lines otherwise).
#pragma once

#include <cstdint>
#include <fstream>
#include <string>

namespace modtrain {

class RunDir {
 public:
  // Only the writer (rank 0) touches the disk.
  RunDir(std::string dir, bool writer);
  const std::string& dir() const { return dir_; }
  std::string path(const std::string& name) const;
  void write_config(const std::string& yaml);
  void append_metrics(const std::string& json_line);  // flushed at once: a crash loses nothing logged

 private:
  std::string dir_;
  bool writer_;
  std::ofstream metrics_;
};

// One training run per run.dir at a time: rank 0 holds an exclusive flock on run.dir/.lock for
// the whole run (two runs into one directory interleaved metrics.jsonl and mixed checkpoints).
// The lock file names the holder (host, pid) for the refusal's message. The kernel drops the lock
// when its holder dies, so a killed run never blocks the next one; a stale .lock file is harmless.
class RunDirLock {
 public:
  RunDirLock() = default;
  // Throws UserError naming the holder when another process holds run.dir's lock. A run.dir that
  // cannot be created is left to RunDir to report.
  static RunDirLock acquire(const std::string& dir, const std::string& host);
  RunDirLock(RunDirLock&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
  RunDirLock& operator=(RunDirLock&& other) noexcept;
  RunDirLock(const RunDirLock&) = delete;
  RunDirLock& operator=(const RunDirLock&) = delete;
  ~RunDirLock();

 private:
  int fd_ = -1;
};

// Every rank must see the run.dir rank 0 sees: each writes its part of every checkpoint there and
// rank 0 commits them. Rank 0 writes RUN/.run-id (host, pid and a random number, new every start),
// and every rank reads it back: a node-local run.dir (scratch on each node) is found at start, not
// at the first checkpoint. `write_run_id` returns the text written ("" when run.dir cannot be
// written: RunDir reports that); `read_run_id` what this rank sees there ("" when nothing).
std::string write_run_id(const std::string& dir, const std::string& host);
std::string read_run_id(const std::string& dir);

class ProgressLine {
 public:
  explicit ProgressLine(bool enabled);  // live only when stdout is a terminal
  bool live() const { return live_; }
  // `extra`: more figures after the loss (e.g. "ppl 41.2" under train.objective mlm)
  void update(int64_t step, int64_t total, double loss, double lr, double tokens_per_s, double eta_s,
              const std::string& extra = "");
  void finish();

 private:
  bool enabled_, live_;
};

}  // namespace modtrain
