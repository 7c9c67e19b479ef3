// Learning-rate schedule: linear warmup from 0 to the peak, then constant, linear decay to 0 or
// cosine decay to 0 at max_steps. Plain arithmetic, identical on every rank.
#pragma once

#include <cstdint>

#include "modtrain/config/config.h"

namespace modtrain {

// The learning rate for optimiser step `step` (0-based: the first update uses lr_at(0)).
double lr_at(const TrainConfig& train, int64_t step);

}  // namespace modtrain
