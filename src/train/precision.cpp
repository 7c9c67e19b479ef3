#include "modtrain/train/precision.h"

#include <ATen/autocast_mode.h>
#include <torch/version.h>

#include "modtrain/core/error.h"
#include "modtrain/dist/device.h"

// LibTorch 2.4 replaced the CUDA-only autocast setters with per-device-type ones.
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
#define MODTRAIN_AUTOCAST_BY_DEVICE 1
#endif

namespace modtrain {

std::string precision_problem(Precision precision, bool cuda, int compute_capability) {
  if (precision == Precision::kFp32) return "";
  if (!cuda)
    return std::string("train.precision = ") + to_string(precision) +
           " needs a CUDA device; this rank runs on the CPU (use train.precision=fp32, or run on GPUs with "
           "dist.device=auto)";
  // bf16 arithmetic needs Ampere (sm_80) or newer, as torch.cuda.is_bf16_supported() says; older
  // GPUs emulate some bf16 kernels slowly and lack others. -1: the capability is unknown (no cudart).
  if (precision == Precision::kBf16 && compute_capability >= 0 && compute_capability < 80)
    return "train.precision = bf16 needs a GPU of compute capability 8.0 (Ampere) or newer; this one is " +
           std::to_string(compute_capability / 10) + "." + std::to_string(compute_capability % 10) +
           " (use train.precision=fp16 with its loss scaling, or fp32)";
  return "";
}

void check_precision(Precision precision, const torch::Device& device) {
  const std::string problem =
      precision_problem(precision, device.is_cuda(),
                        device.is_cuda() ? cuda_compute_capability(device.has_index() ? device.index() : 0) : -1);
  if (!problem.empty()) throw UserError(problem);
}

AutocastScope::AutocastScope(Precision precision, const torch::Device& device) {
  if (!device.is_cuda()) return;
    // The state before this scope, restored on exit, so that scopes nest (an fp32 scope inside a
    // bf16 one turns autocast off for its extent, as torch.autocast(enabled=False) does).
#ifdef MODTRAIN_AUTOCAST_BY_DEVICE
  previous_enabled_ = at::autocast::is_autocast_enabled(at::kCUDA);
  previous_dtype_ = at::autocast::get_autocast_dtype(at::kCUDA);
#else
  previous_enabled_ = at::autocast::is_enabled();
  previous_dtype_ = at::autocast::get_autocast_gpu_dtype();
#endif
  const bool enable = precision != Precision::kFp32;
  const auto dtype = precision == Precision::kBf16 ? at::kBFloat16 : enable ? at::kHalf : previous_dtype_;
#ifdef MODTRAIN_AUTOCAST_BY_DEVICE
  at::autocast::set_autocast_dtype(at::kCUDA, dtype);
  at::autocast::set_autocast_enabled(at::kCUDA, enable);
#else
  at::autocast::set_autocast_gpu_dtype(dtype);
  at::autocast::set_enabled(enable);
#endif
  at::autocast::increment_nesting();
  active_ = true;
}

AutocastScope::~AutocastScope() {
  if (!active_) return;
#ifdef MODTRAIN_AUTOCAST_BY_DEVICE
  at::autocast::set_autocast_dtype(at::kCUDA, previous_dtype_);
  at::autocast::set_autocast_enabled(at::kCUDA, previous_enabled_);
#else
  at::autocast::set_autocast_gpu_dtype(previous_dtype_);
  at::autocast::set_enabled(previous_enabled_);
#endif
  // As Python's context manager: the cast-weight cache is dropped when the outermost scope ends.
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
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
