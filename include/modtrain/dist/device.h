// Where a rank computes: cuda:<local rank> when CUDA is available and dist.device allows, else
// the CPU, with CPU threads = cores on the node / ranks on the node unless dist.threads is set.
#pragma once

#include <string>
#include <vector>

#include "modtrain/config/config.h"
#include "modtrain/dist/world.h"

namespace modtrain {

struct Placement {
  bool cuda = false;
  int cuda_index = -1;  // GPU used by this rank when cuda
  int cpu_threads = 1;  // intra-op threads given to LibTorch
  // What the ranks compare at start-up (agree_on_placement):
  std::string host;              // this rank's node
  int visible_gpus = 0;          // GPUs this rank sees (after CUDA_VISIBLE_DEVICES)
  std::string gpu_id;            // the GPU's PCI bus id when cuda ("" when unknown)
  std::string backend;           // the data plane it will build: "nccl", "mpi", or "" (one plain process)
  std::string problem;           // why this rank cannot run as configured ("" = fine); agree_on_placement reports it
  std::string transport;         // what carries its MPI messages (World::transport()); in the start banner
  std::string describe() const;  // "cuda:1" or "cpu (4 threads)"
};

// Which GPU a rank of a node uses, from the GPUs it sees. Pure, so it is tested on CPU.
//  - as many GPUs as ranks on the node, or more: GPU <local rank>;
//  - one GPU: GPU 0 (per-task binding, e.g. Slurm --gpus-per-task=1, gives every rank its own
//    CUDA_VISIBLE_DEVICES; ranks that really share one GPU are caught by agree_on_placement);
//  - between 1 and the ranks on the node: NCCL cannot put two ranks on one GPU, so for nccl (and
//    auto, which means nccl on GPUs) an error naming the fix; for mpi, shared round robin with a warning.
struct GpuChoice {
  int index = -1;  // -1: no GPU (visible == 0) or an error
  std::string error, warning;
};
GpuChoice choose_gpu(int local_rank, int local_size, int visible, Backend backend, const std::string& host = "");

// The data plane a rank builds: nccl or mpi (dist.backend; auto = nccl on a GPU), or "" for
// auto in a world of one (one plain process).
std::string data_plane_backend(Backend backend, int world_size, bool cuda);

// Chooses this rank's placement and applies the CPU part (torch::set_num_threads). Binding the
// CUDA device is left to the CUDA code that uses it (the NCCL communicator and the trainer).
// A rank that cannot run as configured (dist.device = cuda without a usable GPU, or choose_gpu
// refuses) gets `problem` set: agree_on_placement turns it into one error on every rank.
// `visible_gpus` < 0: ask LibTorch (tests pass a count).
Placement place_rank(const World& world, const DistConfig& dist, int visible_gpus = -1);

// Collective, right after MPI starts and before any data-plane call: all-gathers every rank's
// placement and fails on every rank (CollectiveError, the line printed once by rank 0) when a rank
// has a problem, or, with one line naming the odd ones out, when the ranks differ
// in device kind or data-plane backend (a node that sees no GPU would build MPI while the others
// wait in NCCL's start-up), or when two NCCL ranks of one node are on the same GPU.
// Returns every rank's host, by rank.
std::vector<std::string> agree_on_placement(const World& world, const Placement& mine, bool allow_uneven_nodes = false);

// The check itself, on the gathered placements (index = rank): "" when they agree, else the line.
std::string placement_conflicts(const std::vector<Placement>& ranks, bool allow_uneven_nodes = false);
// "ranks 2,3 on nodeb": up to 8 ranks named, then counted; up to 4 of their hosts, then counted.
// `hosts`: every rank's host, by rank. Shared by the placement errors and the watchdog's roll call.
std::string ranks_on_hosts(const std::vector<size_t>& ranks, const std::vector<std::string>& hosts);
// "4 ranks on 2 hosts: nodea (ranks 0-1), nodeb (ranks 2-3)": the first 8 hosts, then a count.
std::string hosts_summary(const std::vector<Placement>& ranks);

// The CUDA device's PCI bus id ("0000:3b:00.0") and compute capability (major * 10 + minor), from
// the CUDA runtime; "" and -1 where modtrain is built without it.
std::string cuda_bus_id(int device);
int cuda_compute_capability(int device);

// Sets OpenBLAS's own thread pool (Debian's LibTorch calls BLAS through libblas.so.3 and never
// sizes it). OpenBLAS's pthreads and LibTorch's OpenMP threads then compete for the same cores:
// on 2 cores the tiny model trains 2x slower with both at 2 threads than with BLAS at 1, while
// BERT-base, whose matrices are large, is fastest with both at 2 (measured; docs/performance.md).
// Auto: 1 thread for hidden <= 256, else `cpu_threads`. Returns the count set, or 0 when the
// loaded BLAS is not OpenBLAS.
int set_blas_threads(int requested, int hidden, int cpu_threads);

}  // namespace modtrain
