// The CPU inner loops of the flat AdamW (train/optimizer.h). Kept free of LibTorch headers and
// compiled with -O3 -fno-math-errno so that GCC vectorises them (sqrt included) for the baseline
// instruction set; the caller splits the buffer over threads. LibTorch 1.13 has no fused CPU AdamW
// (torch::optim::AdamW dispatches ~10 operators per tensor, each a pass over memory), hence this.
#include <cmath>
#include <cstdint>

#include "adamw_kernels.h"

// On x86-64 also an AVX2 + FMA clone, chosen at load time by the CPU (GCC's function
// multi-versioning): the binary still runs on any x86-64; where AVX2 exists the pass is about
// faster (sqrt and division bound, half as many vector instructions; no FMA contraction, see
// CMakeLists.txt, so both round alike).
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define MODTRAIN_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define MODTRAIN_CLONES
#endif

namespace modtrain::kernels {

MODTRAIN_CLONES void adamw_cpu(float* __restrict param, const float* __restrict grad, float* __restrict exp_avg,
                               float* __restrict exp_avg_sq, int64_t n, const AdamWStep& s) {
  const float decay = s.decay, beta1 = s.beta1, one_minus_beta1 = s.one_minus_beta1, beta2 = s.beta2,
              one_minus_beta2 = s.one_minus_beta2, bc2 = s.bias_correction2_sqrt, eps = s.eps,
              neg_step_size = s.neg_step_size, scale = s.grad_scale;
  const bool decays = s.decays;
  for (int64_t i = 0; i < n; ++i) {
    const float g = grad[i] * scale;
    float p = param[i];
    if (decays) p *= decay;  // torch::optim::AdamW: p.mul_(1 - lr * weight_decay) first
    const float m = exp_avg[i] * beta1 + one_minus_beta1 * g;
    const float v = exp_avg_sq[i] * beta2 + one_minus_beta2 * g * g;
    const float denom = std::sqrt(v) / bc2 + eps;
    exp_avg[i] = m;
    exp_avg_sq[i] = v;
    param[i] = p + neg_step_size * m / denom;  // addcdiv_: self + value * t1 / t2
  }
}

MODTRAIN_CLONES double sum_squares_cpu(const float* __restrict x, int64_t n) {
  // Eight independent accumulators: vectorisable, and the same order for the same n.
  double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int k = 0; k < 8; ++k) acc[k] += static_cast<double>(x[i + k]) * static_cast<double>(x[i + k]);
  for (; i < n; ++i) acc[0] += static_cast<double>(x[i]) * static_cast<double>(x[i]);
  return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

}  // namespace modtrain::kernels
