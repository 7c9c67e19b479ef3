// Where a rank computes: cuda:<local rank> when CUDA is available and dist.device allows, else
// the CPU, with CPU threads = cores on the node / ranks on the node unless dist.threads is set.
#pragma once

#include <string>

#include "modtrain/config/config.h"
#include "modtrain/dist/world.h"

namespace modtrain {

struct Placement {
  bool cuda = false;
  int cuda_index = -1;           // GPU used by this rank when cuda
  int cpu_threads = 1;           // intra-op threads given to LibTorch
  std::string describe() const;  // "cuda:1" or "cpu (4 threads)"
};

// Chooses this rank's placement and applies the CPU part (torch::set_num_threads). Binding the
// CUDA device is left to the CUDA code that uses it (the NCCL communicator and the trainer).
// Throws UserError when dist.device = cuda and no GPU is usable.
Placement place_rank(const World& world, const DistConfig& dist);

// Sets OpenBLAS's own thread pool (Debian's LibTorch calls BLAS through libblas.so.3 and never
// sizes it). OpenBLAS's pthreads and LibTorch's OpenMP threads then compete for the same cores:
// on 2 cores the tiny model trains 2x slower with both at 2 threads than with BLAS at 1, while
// BERT-base, whose matrices are large, is fastest with both at 2 (measured; docs/performance.md).
// Auto: 1 thread for hidden <= 256, else `cpu_threads`. Returns the count set, or 0 when the
// loaded BLAS is not OpenBLAS.
int set_blas_threads(int requested, int hidden, int cpu_threads);

}  // namespace modtrain
