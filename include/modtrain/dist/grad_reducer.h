// Data-parallel gradient averaging, as PyTorch DDP's reducer and Horovod's tensor fusion do it:
// parameters grouped into flat buckets in reverse registration order (dist.bucket_mb; the first
// bucket ~1 MB so communication starts early); gradients live as views into the buckets (no
// copy back); during the last backward of a step an autograd post-accumulate hook marks each
// parameter ready and a bucket's all-reduce starts as soon as all its gradients are there
// (buckets start in index order on every rank, so collectives always match); finalize() waits
// (watchdog-bounded) before clipping. A parameter that received no gradient counts as zero on
// that rank: no hang, and the average stays over all ranks.
#pragma once

#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "modtrain/dist/communicator.h"
#include "modtrain/dist/grad_sync.h"
#include "modtrain/dist/timeline.h"

namespace modtrain {

struct ReducerOptions {
  size_t bucket_cap_bytes = 25u << 20;
  size_t first_bucket_cap_bytes = 1u << 20;  // DDP's choice: a small first bucket starts communication early
};

class GradReducer : public GradientSync {
 public:
  // `params` in registration order (named_parameters()). Broadcasts parameters from rank 0 and
  // checks that every rank has the same names and shapes (a mismatch names the first difference).
  GradReducer(const std::vector<std::pair<std::string, torch::Tensor>>& params, Communicator& comm,
              ReducerOptions options, Timeline* timeline = nullptr);
  ~GradReducer() override;

  void prepare_backward(bool last) override;
  void finalize() override;
  void sum(std::vector<double>& values) override { comm_.sum_host(values, "logged values"); }
  int world_size() const override { return comm_.size(); }

  // Zeroes the gradients in place and keeps them as bucket views.
  bool owns_gradients() const override { return true; }
  void zero_grad() override;

  // Compares checksums of every parameter across ranks; throws naming the first that differs.
  void check_replicas(long step) override;

  struct BucketInfo {
    size_t params, bytes;
  };
  std::vector<BucketInfo> buckets() const;

 private:
  struct Slot {
    std::string name;
    torch::Tensor param;
    size_t bucket, offset, numel;
  };
  struct Bucket {
    torch::Tensor flat;  // [elements]
    std::vector<size_t> slots;
    size_t pending = 0;  // parameters not yet ready in this step
    std::unique_ptr<Work> work;
  };
  void on_grad_ready(size_t slot);
  void attach_views();
  void launch_ready_buckets();

  Communicator& comm_;
  ReducerOptions options_;
  Timeline* timeline_;
  std::vector<Slot> slots_;
  std::vector<Bucket> buckets_;
  std::vector<std::shared_ptr<torch::autograd::Node>> accumulators_;  // kept alive: they own our hooks
  std::vector<bool> ready_;
  size_t next_launch_ = 0;
  bool armed_ = false;
  bool any_launched_ = false;
};

}  // namespace modtrain
