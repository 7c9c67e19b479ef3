// Data-parallel gradient averaging, as PyTorch DDP's reducer and Horovod's tensor fusion do it,
// over the flat buckets of dist/flat_params.h (the gradients are views into them: no copy in or
// out): during the last backward of a step an autograd post-accumulate hook marks each parameter
// ready and a bucket's collective starts as soon as all its gradients are there (buckets start in
// index order on every rank, so collectives always match); finalize() waits (watchdog-bounded)
// before the optimiser. Two modes: all-reduce (every rank gets the whole averaged gradient) and,
// for ZeRO-1, reduce-scatter (every rank gets the average of its own slice of each bucket, in the
// bucket's grad_shard). A parameter that received no gradient counts as zero on that rank: no
// hang, and the average stays over all ranks. A parameter marked ready twice in one backward is an
// error naming it; the hooks are removed when the reducer is destroyed. Buckets travel on the data
// plane (Communicator); the start-up checks on the control plane. With `wire` = bf16
// (dist.grad_reduce_dtype), each bucket is rounded into a bf16 copy (allocated once, half the
// bucket), summed in bf16 on the wire, and divided by the world size into the fp32 gradient.
#pragma once

#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "modtrain/dist/collectives.h"
#include "modtrain/dist/communicator.h"
#include "modtrain/dist/flat_params.h"
#include "modtrain/dist/reducer.h"
#include "modtrain/dist/timeline.h"

namespace modtrain {

class BucketedReducer : public GradientReducer {
 public:
  // Checks that every rank has the same parameter names and shapes (a mismatch names this rank's
  // parameters; control plane), then broadcasts the parameter buckets from rank 0 (data plane).
  // Reduce-scatter when `flat` is sharded (ZeRO-1; over the communicator's ranks), else all-reduce.
  BucketedReducer(FlatParams& flat, Communicator& comm, Collectives& collectives, Timeline* timeline = nullptr,
                  torch::ScalarType wire = torch::kFloat32);
  ~BucketedReducer() override;  // removes the autograd hooks
  BucketedReducer(const BucketedReducer&) = delete;
  BucketedReducer& operator=(const BucketedReducer&) = delete;

  void prepare_backward(bool last) override;
  void finalize() override;
  void zero_grad() override;  // zeroes the buckets and keeps the gradients as bucket views

 private:
  struct Hook {
    std::shared_ptr<torch::autograd::Node> accumulator;  // kept alive: it owns the hook
    uintptr_t key;                                       // for del_post_hook
  };
  void on_grad_ready(size_t slot);
  void launch_ready_buckets();

  FlatParams& flat_;
  Communicator& comm_;
  Timeline* timeline_;
  std::vector<size_t> pending_;  // per bucket: parameters not yet ready in this step
  std::vector<std::unique_ptr<Work>> work_;
  torch::ScalarType wire_;
  // bf16 wire: per bucket, the rounded copy of what is sent and (ZeRO-1) of the slice received.
  std::vector<torch::Tensor> wire_in_, wire_out_;
  std::vector<Hook> hooks_;
  std::vector<bool> ready_;
  size_t next_launch_ = 0;
  bool armed_ = false;
};

}  // namespace modtrain
