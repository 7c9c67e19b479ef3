#include "modtrain/train/schedule.h"

#include <algorithm>
#include <cmath>

#include "modtrain/data/sampler.h"

namespace modtrain {

double lr_at(const TrainConfig& t, int64_t step, int64_t total_steps) {
  // HF's get_linear_schedule_with_warmup convention: step s uses the factor at s (warmup ramps
  // over s = 0 .. warmup-1 from 0; the first update therefore has lr 0 only when warmup > 0).
  if (step < t.warmup_steps)
    return t.lr * static_cast<double>(step) / static_cast<double>(std::max<int64_t>(1, t.warmup_steps));
  const double progress = static_cast<double>(step - t.warmup_steps) /
                          static_cast<double>(std::max<int64_t>(1, total_steps - t.warmup_steps));
  switch (t.schedule) {
    case Schedule::kConstant: return t.lr;
    case Schedule::kLinear: return t.lr * std::max(0.0, 1.0 - progress);
    case Schedule::kCosine: return t.lr * 0.5 * (1.0 + std::cos(M_PI * std::min(1.0, progress)));
  }
  return t.lr;
}

uint64_t step_seed(uint64_t seed, int rank, int64_t step) {
  // SplitMix64 of (seed, rank, step): distinct, well-mixed streams per rank and step.
  SplitMix64 mix(seed ^ (0x9E3779B97F4A7C15ULL * static_cast<uint64_t>(rank + 1)));
  mix.state ^= 0xD1B54A32D192ED03ULL * static_cast<uint64_t>(step + 1);
  return mix.next() >> 1;  // manual_seed takes any uint64; keep it positive for readability in logs
}

}  // namespace modtrain
