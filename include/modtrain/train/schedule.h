// Learning-rate schedule: linear warmup from 0 to the peak, then constant, linear decay to 0 or
// cosine decay to 0 at the run's last step. Plain arithmetic, identical on every rank. Like
// llm.c's schedulers it receives the real number of steps: train.max_steps, or the count that
// train.epochs gives (Trainer::total_steps()), never the config's max_steps behind its back.
#pragma once

#include <cstdint>

#include "modtrain/config/config.h"

namespace modtrain {

// The learning rate for optimiser step `step` (0-based: the first update uses lr_at(0)) of a run
// of `total_steps` steps.
double lr_at(const TrainConfig& train, int64_t step, int64_t total_steps);

// The generator seed for the dropout of `step` on `rank`: a function of (run.seed, rank, step)
// alone, so a resumed run draws the same dropout masks as an uninterrupted one.
uint64_t step_seed(uint64_t seed, int rank, int64_t step);

}  // namespace modtrain
