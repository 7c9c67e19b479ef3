// Mixed precision: an autocast scope for the forward pass (bf16 or fp16 on CUDA; version
// differences between LibTorch 1.13 and 2.x guarded here and nowhere else) and a dynamic loss
// scaler for fp16 that skips steps with inf/nan gradients and backs off, like GradScaler.
#pragma once

#include <torch/torch.h>

#include "modtrain/config/config.h"

namespace modtrain {

// Throws UserError for a precision the device cannot do: bf16/fp16 need CUDA here, bf16 a GPU of
// compute capability 8.0 or newer.
void check_precision(Precision precision, const torch::Device& device);
// The check itself ("" = fine); compute_capability = major * 10 + minor, -1 when unknown.
std::string precision_problem(Precision precision, bool cuda, int compute_capability);

// Autocast (CUDA) for the scope, restoring the enabled flag and dtype it found on exit (scopes nest).

class AutocastScope {
 public:
  AutocastScope(Precision precision, const torch::Device& device);
  ~AutocastScope();
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;

 private:
  bool active_ = false;
  bool previous_enabled_ = false;
  at::ScalarType previous_dtype_ = at::kHalf;
};

class LossScaler {
 public:
  explicit LossScaler(bool enabled, double initial = 65536.0, int growth_interval = 2000)
      : enabled_(enabled), scale_(enabled ? initial : 1.0), growth_interval_(growth_interval) {}
  bool enabled() const { return enabled_; }
  double scale() const { return scale_; }
  // After a step's gradients are known: finite -> maybe grow; not finite -> halve (the caller skips).
  void update(bool finite);
  int good_steps() const { return good_steps_; }
  void restore(double scale, int good_steps) {  // from a checkpoint
    scale_ = scale;
    good_steps_ = good_steps;
  }

 private:
  bool enabled_;
  double scale_;
  int growth_interval_;
  int good_steps_ = 0;
};

}  // namespace modtrain
