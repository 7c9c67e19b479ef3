// The optimiser seam: the trainer, checkpoints and resume talk to `Optimizer` (one update step
// with the learning rate, clipping and loss scale folded in; the state saved and loaded by
// parameter name), not to a LibTorch optimiser. The implementation is AdamW over the flat buckets
// of dist/flat_params.h (train.optimizer: adamw), with ZeRO-1 (train.zero: 1): every rank keeps the
// moments of its 1/N slice of every bucket only, updates that slice, and all-gathers the
// parameters afterwards. step() returns with the parameters complete, so nothing that reads them
// (the next forward, an evaluation, a checkpoint, a replica check, an export) has a wait to
// remember: on CUDA the compute stream waits for the gather (the host does not; it polls the
// gather at the next step, for the watchdog), on MPI the host waits (the gather is host work).
//
// One step: the global gradient norm (one pass per bucket; with ZeRO-1 the squared norms of the
// slices are summed over ranks on the data plane) is the only value read back to the host: it is
// the non-finite flag and the clipping coefficient. The update itself is one pass per bucket: on
// CPU a vectorised loop (gradient x clip / loss scale, both moments, weight decay, the parameter),
// on CUDA with LibTorch >= 2.1 LibTorch's fused AdamW kernel, elsewhere eight tensor operations
// per bucket. Same formula and order as torch::optim::AdamW (decoupled decay, bias-corrected).
#pragma once

#include <torch/torch.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "modtrain/config/config.h"
#include "modtrain/dist/communicator.h"
#include "modtrain/dist/flat_params.h"
#include "modtrain/train/sharded_state.h"

namespace modtrain {

// An optimiser's full (unsharded) state by parameter name: what a checkpoint stores.
struct OptimizerState {
  std::string optimizer;  // "adamw"
  int64_t step = 0;       // updates applied (skipped steps do not count)
  // "exp_avg.<parameter>", "exp_avg_sq.<parameter>": CPU float32 tensors of the parameter's shape.
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
};

struct UpdateResult {
  double grad_norm = 0;      // of the unscaled gradient, before clipping
  bool applied = false;      // false: the norm was not finite, nothing changed (the caller skips the step)
  double gather_wait_s = 0;  // ZeRO-1: host time spent waiting for the parameter all-gather
};

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  virtual std::string name() const = 0;
  // After the reducer's finalize(): clip to `max_norm` (infinity: no clipping), divide by
  // `loss_scale`, update. Collective with ZeRO-1 (every rank calls it at every step). Returns with
  // the parameters complete on every rank (as seen from the compute device's queue).
  virtual UpdateResult step(double lr, double max_norm, double loss_scale) = 0;
  // The state tensors, sharded under ZeRO-1 (train/sharded_state.h): what sharded checkpoints
  // write and resharding loads fill, each rank its own pieces.
  virtual ShardedState& sharded_state() = 0;
  virtual int64_t updates() const = 0;  // the step count the state goes with
  virtual void set_updates(int64_t steps) = 0;
  // Throws UserError naming `source` when a checkpoint's optimiser is not this one.
  virtual void check_kind(const std::string& optimizer, const std::string& source) const = 0;
  // The full, unsharded state by parameter name (collective with ZeRO-1: every rank calls it;
  // exports and tests only: checkpoints never gather).
  virtual OptimizerState state() = 0;
  // Takes this rank's part of a full state (single-file checkpoints). Throws UserError naming the
  // first parameter whose state is missing, unknown or of another shape, or a state of another optimiser.
  virtual void load_state(const OptimizerState& state, const std::string& source) = 0;
  virtual size_t state_bytes() const = 0;  // optimiser state held by this rank
};

struct AdamWOptions {
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0.01;
  // false: the tensor-operation update on every device (the CUDA fallback; tests run it on CPU).
  bool fused = true;
};

// `comm` is the data plane, needed when `flat` is sharded (ZeRO-1 over comm->size() ranks).
std::unique_ptr<Optimizer> make_adamw(FlatParams& flat, AdamWOptions options, Communicator* comm);
std::unique_ptr<Optimizer> make_optimizer(const TrainConfig& train, FlatParams& flat, Communicator* comm);

// The reference the flat AdamW replaced and is measured against (tests, benchmarks): LibTorch's
// per-tensor torch::optim::AdamW with the same two groups (no decay for the names in `no_decay`).
std::unique_ptr<torch::optim::AdamW> make_per_tensor_adamw(const NamedParameters& params, double lr,
                                                           double weight_decay,
                                                           const std::unordered_set<std::string>& no_decay);

}  // namespace modtrain
