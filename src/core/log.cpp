#include "modtrain/core/log.h"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <mutex>

namespace modtrain::log {
namespace {
struct State {
  int rank = 0;
  int world_size = 1;
  Level level = Level::kInfo;
  bool all_ranks = false;
  std::mutex mutex;
};
State& state() {
  static State s;
  return s;
}
void emit(FILE* stream, const std::string& line) {
  std::lock_guard<std::mutex> lock(state().mutex);
  if (stream == stderr) std::fflush(stdout);  // keep stdout and stderr lines in order
  // The line and its newline in one write(2): ranks that fail together share mpirun's stderr, and
  // separate writes came out as "[rank 0] error: a[rank 1] error: b" on one line.
  const std::string whole = line + "\n";
  if (stream != stderr) {  // stdout: through its FILE, whose error flag finish_stdout() checks
    std::fwrite(whole.data(), 1, whole.size(), stream);
    std::fflush(stream);
    return;
  }
  std::fflush(stream);
  const int fd = ::fileno(stream);
  for (size_t done = 0; done < whole.size();) {
    const ssize_t n = ::write(fd, whole.data() + done, whole.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // nowhere left to report a failed report
    done += static_cast<size_t>(n);
  }
}
bool speaks(Level level) {
  const State& s = state();
  return level >= s.level && (s.rank == 0 || s.all_ranks);
}
}  // namespace

bool enabled(Level level) { return speaks(level); }

void set_rank(int rank, int world_size) {
  state().rank = rank;
  state().world_size = world_size;
}
void set_level(Level level) { state().level = level; }
void set_all_ranks(bool all_ranks) { state().all_ranks = all_ranks; }

std::string rank_prefix() {
  const State& s = state();
  return s.world_size > 1 ? "[rank " + std::to_string(s.rank) + "] " : "";
}

void debug(const std::string& message) {
  if (speaks(Level::kDebug)) emit(stdout, rank_prefix() + "debug: " + message);
}
void info(const std::string& message) {
  if (!speaks(Level::kInfo)) return;
  emit(stdout, state().all_ranks ? rank_prefix() + message : message);
}
void warn(const std::string& message) {
  if (state().level <= Level::kWarn) emit(stderr, rank_prefix() + "warning: " + message);
}
void error(const std::string& message) { emit(stderr, rank_prefix() + "error: " + message); }

}  // namespace modtrain::log
