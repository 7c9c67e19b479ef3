// Data-parallel gradient averaging, as PyTorch DDP's reducer and Horovod's tensor fusion do it:
// parameters grouped into flat buckets in reverse registration order (dist.bucket_mb; the first
// bucket ~1 MB so communication starts early); gradients live as views into the buckets (no
// copy back); during the last backward of a step an autograd post-accumulate hook marks each
// parameter ready and a bucket's all-reduce starts as soon as all its gradients are there
// (buckets start in index order on every rank, so collectives always match); finalize() waits
// (watchdog-bounded) before clipping. A parameter that received no gradient counts as zero on
// that rank: no hang, and the average stays over all ranks. A parameter marked ready twice in one
// backward is an error naming it; the hooks are removed when the reducer is destroyed.
// Buckets travel on the data plane (Communicator); the start-up checks on the control plane.
#pragma once

#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "modtrain/dist/collectives.h"
#include "modtrain/dist/communicator.h"
#include "modtrain/dist/reducer.h"
#include "modtrain/dist/timeline.h"

namespace modtrain {

using NamedParameters = std::vector<std::pair<std::string, torch::Tensor>>;

struct ReducerOptions {
  size_t bucket_cap_bytes = 25u << 20;
  size_t first_bucket_cap_bytes = 1u << 20;  // DDP's choice: a small first bucket starts communication early
};

class GradReducer : public GradientReducer {
 public:
  // `params` in registration order (named_parameters()). Checks that every rank has the same
  // names and shapes (a mismatch names this rank's parameters; control plane), then broadcasts
  // the parameters from rank 0 (data plane).
  GradReducer(const NamedParameters& params, Communicator& comm, Collectives& collectives, ReducerOptions options,
              Timeline* timeline = nullptr);
  ~GradReducer() override;  // removes the autograd hooks
  GradReducer(const GradReducer&) = delete;
  GradReducer& operator=(const GradReducer&) = delete;

  void prepare_backward(bool last) override;
  void finalize() override;
  void zero_grad() override;  // zeroes the buckets and keeps the gradients as bucket views

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
  struct Hook {
    std::shared_ptr<torch::autograd::Node> accumulator;  // kept alive: it owns the hook
    uintptr_t key;                                       // for del_post_hook
  };
  void on_grad_ready(size_t slot);
  void attach_views();
  void launch_ready_buckets();

  Communicator& comm_;
  ReducerOptions options_;
  Timeline* timeline_;
  std::vector<Slot> slots_;
  std::vector<Bucket> buckets_;
  std::vector<Hook> hooks_;
  std::vector<bool> ready_;
  size_t next_launch_ = 0;
  bool armed_ = false;
};

// One process: no communication; zero_grad() zeroes the gradients in place.
class LocalReducer : public GradientReducer {
 public:
  explicit LocalReducer(std::vector<torch::Tensor> params) : params_(std::move(params)) {}
  void prepare_backward(bool) override {}
  void finalize() override {}
  void zero_grad() override;

 private:
  std::vector<torch::Tensor> params_;
};

// Compares the replicas across ranks (two float64 checksums per parameter, gathered on the
// control plane); throws naming the first parameter that differs from rank 0's.
void check_replicas(const NamedParameters& params, Collectives& collectives, int64_t step);

}  // namespace modtrain
