#include "modtrain/train/precision.h"

#include <ATen/autocast_mode.h>
#include <torch/version.h>

#include "modtrain/core/error.h"

// LibTorch 2.4 replaced the CUDA-only autocast setters with per-device-type ones.
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
#define MODTRAIN_AUTOCAST_BY_DEVICE 1
#endif

namespace modtrain {

void check_precision(Precision precision, const torch::Device& device) {
  if (precision == Precision::kFp32) return;
  if (!device.is_cuda())
    throw UserError(std::string("train.precision = ") + to_string(precision) +
                    " needs a CUDA device; this rank runs on the CPU "
                    "(use train.precision=fp32, or run on GPUs with dist.device=auto)");
}

AutocastScope::AutocastScope(Precision precision, const torch::Device& device) {
  if (precision == Precision::kFp32 || !device.is_cuda()) return;
  const auto dtype = precision == Precision::kBf16 ? at::kBFloat16 : at::kHalf;
#ifdef MODTRAIN_AUTOCAST_BY_DEVICE
  previous_ = at::autocast::is_autocast_enabled(at::kCUDA);
  at::autocast::set_autocast_dtype(at::kCUDA, dtype);
  at::autocast::set_autocast_enabled(at::kCUDA, true);
#else
  previous_ = at::autocast::is_enabled();
  at::autocast::set_autocast_gpu_dtype(dtype);
  at::autocast::set_enabled(true);
#endif
  active_ = true;
}

AutocastScope::~AutocastScope() {
  if (!active_) return;
#ifdef MODTRAIN_AUTOCAST_BY_DEVICE
  at::autocast::set_autocast_enabled(at::kCUDA, previous_);
#else
  at::autocast::set_enabled(previous_);
#endif
  at::autocast::clear_cache();  // what Python's context manager does on exit
}

void LossScaler::update(bool finite) {
  if (!enabled_) return;
  if (!finite) {
    scale_ = std::max(1.0, scale_ * 0.5);
    good_steps_ = 0;
    return;
  }
  if (++good_steps_ >= growth_interval_) {
    scale_ = std::min(scale_ * 2.0, 16777216.0);
    good_steps_ = 0;
  }
}

}  // namespace modtrain
