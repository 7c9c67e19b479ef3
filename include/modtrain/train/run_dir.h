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
