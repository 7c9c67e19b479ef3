// The data plane: device tensors (gradient buckets, parameters) reduced, broadcast and gathered
// over ranks, behind one narrow interface with two backends: `mpi` (CPU tensors, non-blocking MPI
// collectives on a communication thread) and `nccl` (CUDA tensors on a dedicated stream ordered
// against the caller's current CUDA stream with events, both ways). Host values never travel
// here: they are the control plane (dist/collectives.h, MPI on every backend). Every wait is
// bounded by dist.timeout_s: a collective that does not complete raises an error naming the
// rank and the operation.
#pragma once

#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "modtrain/config/config.h"
#include "modtrain/dist/device.h"
#include "modtrain/dist/timeline.h"
#include "modtrain/dist/world.h"

namespace modtrain {

enum class ReduceOp { kSum, kAvg };

// An operation in flight. wait() blocks until it completed (throwing the watchdog's error).
// wait_on_device() makes whatever this process queues next on its compute device run after the
// operation, blocking the host only where the operation is host work (MPI). NCCL: the current CUDA
// stream waits for the operation's event, and the host goes on; wait() is still called later, for
// the watchdog, errors and the timeline.
class Work {
 public:
  virtual ~Work() = default;
  virtual void wait() = 0;
  virtual void wait_on_device() { wait(); }
};

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual std::string backend() const = 0;
  // What carries its messages, for the start banner (dist/transport.h); "" when it has nothing
  // to add to the MPI line (the MPI data plane).
  virtual std::string transport() const { return ""; }
  virtual int rank() const = 0;
  virtual int size() const = 0;

  // In place on a contiguous tensor. `what` names the operation in timelines and errors.
  virtual std::unique_ptr<Work> all_reduce_async(torch::Tensor tensor, ReduceOp op, const std::string& what) = 0;
  virtual void broadcast(torch::Tensor tensor, int root, const std::string& what) = 0;
  // Every rank's tensor of the same shape, concatenated along a new leading dim: [size, ...].
  virtual torch::Tensor all_gather(const torch::Tensor& tensor, const std::string& what) = 0;
  virtual void barrier(const std::string& what) = 0;
  // ZeRO-1 (as llm.c and DeepSpeed stage 1). `input` [size * k] contiguous; `output` [k], not
  // overlapping `input`, receives this rank's chunk (elements [rank * k, (rank + 1) * k)) of the
  // element-wise reduction over ranks.
  virtual std::unique_ptr<Work> reduce_scatter_async(torch::Tensor input, torch::Tensor output, ReduceOp op,
                                                     const std::string& what) = 0;
  // In place on a contiguous `tensor` [size * k]: this rank's chunk is its contribution; when the
  // work completes every rank holds every rank's chunk.
  virtual std::unique_ptr<Work> all_gather_chunks_async(torch::Tensor tensor, const std::string& what) = 0;
  // The same for several tensors as one operation (ZeRO-1's parameter gather after the update, one
  // per bucket): NCCL issues them in one group (one launch, one event); the default issues them one
  // by one and waits for all of them.
  virtual std::unique_ptr<Work> all_gather_chunks_group_async(const std::vector<torch::Tensor>& tensors,
                                                              const std::string& what);

  // Collective, after the last operation: shuts the backend down cleanly and reports a failure
  // (NCCL: finalize, waited for under dist.timeout_s, then destroy). No call is legal after it.
  // Destroying a communicator that was not closed aborts it when an exception is unwinding.
  virtual void close() {}

  void all_reduce(torch::Tensor tensor, ReduceOp op, const std::string& what) {
    all_reduce_async(std::move(tensor), op, what)->wait();
  }
};

struct CommOptions {
  double timeout_s = 300;
  Timeline* timeline = nullptr;
};

// dist.backend: auto = nccl when this rank computes on CUDA, else mpi. Throws UserError for nccl
// without a GPU or without NCCL compiled in.
std::unique_ptr<Communicator> make_communicator(Backend backend, const World& world, const Placement& placement,
                                                CommOptions options);

std::unique_ptr<Communicator> make_mpi_communicator(const World& world, CommOptions options);
#ifdef MODTRAIN_HAVE_NCCL
std::unique_ptr<Communicator> make_nccl_communicator(const World& world, const Placement& placement,
                                                     CommOptions options);
// CUDA events for the timeline's GPU lanes (dist/timeline.h).
std::unique_ptr<DeviceClock> make_cuda_clock(int device);
#endif

}  // namespace modtrain
