// CPU inner loops of the flat AdamW (train/optimizer.h), free of LibTorch headers.
#pragma once

#include <cstdint>

namespace modtrain {
namespace kernels {
// One fused AdamW pass over n floats (CPU): g' = g * grad_scale, the moments, decoupled decay and
// the bias-corrected update, in torch::optim::AdamW's order. No ATen operator is dispatched.
// The scalars as ATen would round them (computed in double by the caller, then float).
struct AdamWStep {
  float decay;  // 1 - lr * weight_decay
  bool decays;  // weight_decay != 0
  float beta1, one_minus_beta1, beta2, one_minus_beta2;
  float bias_correction2_sqrt, eps;
  float neg_step_size;  // -lr / bias_correction1
  float grad_scale;     // clip coefficient / loss scale
};
void adamw_cpu(float* param, const float* grad, float* exp_avg, float* exp_avg_sq, int64_t n, const AdamWStep& s);
double sum_squares_cpu(const float* x, int64_t n);  // in double, deterministic for a given n
}  // namespace kernels

}  // namespace modtrain
