// What a rank does when its watchdog fires (a collective that did not complete within
// dist.timeout_s), so that a hang on rank 3,071 of 4,096 can be diagnosed:
//  - it leaves RUN/hangs/rank-RRRRR.txt: its host, pid, the operation it waited in, the step;
//  - a roll call: every rank whose watchdog fired reports to rank 0 on a communicator of its own,
//    and rank 0, after a bounded wait, names the ranks (and their hosts) that did not answer:
//    the dead or stuck ones. The ranks of a hang wait in the same operation, started within a
//    step of each other, so their watchdogs fire together.
// PyTorch's NCCL flight recorder and Horovod's stall inspector answer the same question.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "modtrain/dist/world.h"

namespace modtrain::watchdog {

// Collective (every rank, once, after start-up agreed on the placement). `hosts`: every rank's host,
// by rank. `run_dir`: where the per-rank files go ("" = none).
void arm(const World& world, std::vector<std::string> hosts, const std::string& run_dir);
void set_step(int64_t step);  // the step this rank is in (the trainer, every step)
// Called by a watchdog that fired (any thread; once per process does the work). Returns the text
// to append to its error line: on rank 0 who did not answer the roll call, elsewhere where this
// rank's file is. "" when not armed.
std::string fired(const std::string& what, double timeout_s);
// Pure: "ranks 2,3 on nodeb did not answer; ranks 0,1 did" from who answered (tests).
std::string roll_call_summary(const std::vector<bool>& answered, const std::vector<std::string>& hosts);

}  // namespace modtrain::watchdog
