// Rank-aware logging. Info lines come from rank 0 only (unless all ranks are asked to speak);
// warnings and errors come from any rank and carry "[rank R]" when the job has several ranks.
#pragma once

#include <string>

namespace modtrain::log {

enum class Level { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };

// Called once the MPI world is known; before that every process logs as rank 0 of 1.
void set_rank(int rank, int world_size);
void set_level(Level level);
void set_all_ranks(bool all_ranks);  // let info/debug lines through on every rank

// True when a message of `level` would be printed on this rank.
bool enabled(Level level);

// "[rank R] " when the world has more than one rank, else "".
std::string rank_prefix();

void debug(const std::string& message);
void info(const std::string& message);   // stdout, rank 0
void warn(const std::string& message);   // stderr, any rank: "[rank R] warning: ..."
void error(const std::string& message);  // stderr, any rank: "[rank R] error: ..."

}  // namespace modtrain::log
