#include "modtrain/train/schedule.h"

#include <algorithm>
#include <cmath>

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

}  // namespace modtrain
