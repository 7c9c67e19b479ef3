// The seam between the training step and data parallelism, in flashlight's Reducer shape: the
// step announces each backward pass (prepare_backward), calls finalize() before clipping, and
// zeroes the gradients through the reducer. After finalize() every gradient is the average over
// ranks. The trainer never knows whether a BucketedReducer (dist/bucketed_reducer.h: buckets over MPI or
// NCCL) or a LocalReducer (one process, no communication) is behind it.
#pragma once

#include "modtrain/dist/flat_params.h"

namespace modtrain {

class GradientReducer {
 public:
  virtual ~GradientReducer() = default;
  // Before a micro-step's backward; `last` is true for the backward that completes the step
  // (accumulation micro-steps before it do not communicate).
  virtual void prepare_backward(bool last) = 0;
  // After the last backward: every gradient holds the average over ranks when this returns.
  virtual void finalize() = 0;
  // Zeroes the gradients for the next step (in place: a reducer may keep them as views).
  virtual void zero_grad() = 0;
};

// One process: no communication; zero_grad() zeroes the flat gradient buffers.
class LocalReducer : public GradientReducer {
 public:
  explicit LocalReducer(FlatParams& flat) : flat_(flat) {}
  void prepare_backward(bool) override { flat_.attach_grads(); }
  void finalize() override { flat_.attach_grads(); }
  void zero_grad() override { flat_.zero_grads(); }

 private:
  FlatParams& flat_;
};

}  // namespace modtrain
