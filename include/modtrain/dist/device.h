// Where a rank computes: cuda:<local rank> when CUDA is available and dist.device allows, else
// the CPU, with CPU threads = cores on the node / ranks on the node unless dist.threads is set.
#pragma once

#include <string>

#include "modtrain/config/config.h"
#include "modtrain/dist/world.h"

namespace modtrain {

struct Placement {
  bool cuda = false;
  int cuda_index = -1;  // GPU used by this rank when cuda
  int cpu_threads = 1;  // intra-op threads given to LibTorch
  std::string describe() const;  // "cuda:1" or "cpu (4 threads)"
};

// Chooses this rank's placement and applies the CPU part (torch::set_num_threads). Binding the
// CUDA device is left to the CUDA code that uses it (the NCCL communicator and the trainer).
// Throws UserError when dist.device = cuda and no GPU is usable.
Placement place_rank(const World& world, const DistConfig& dist);

}  // namespace modtrain
