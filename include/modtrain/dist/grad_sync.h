// The seam between the training step and data parallelism: the step announces each backward
// pass and calls finalize() before clipping; a GradientSync makes the gradients the average over
// ranks by then (the bucketed reducer), or does nothing (one rank). The trainer never knows which.
#pragma once

#include <vector>

namespace modtrain {

class GradientSync {
 public:
  virtual ~GradientSync() = default;
  // Before a micro-step's backward; `last` is true for the backward that completes the step
  // (accumulation micro-steps before it do not communicate).
  virtual void prepare_backward(bool last) { (void)last; }
  // After the last backward: every gradient holds the average over ranks when this returns.
  virtual void finalize() {}
  // Sums small host values over ranks in place (losses, counts, flags for logging and decisions).
  virtual void sum(std::vector<double>& values) { (void)values; }
  virtual int world_size() const { return 1; }
  // True when gradients are views into this sync's buffers: then zero_grad() here replaces the
  // optimiser's (which would detach or drop the views).
  virtual bool owns_gradients() const { return false; }
  virtual void zero_grad() {}
  // Compares the replicas across ranks; throws naming the first parameter that differs.
  virtual void check_replicas(long step) { (void)step; }
};

}  // namespace modtrain
