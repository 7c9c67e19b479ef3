// Wiring data parallelism into the trainer: the timeline, the data plane (a Communicator for
// dist.backend and the gradient reducer over it) and the control plane (MPI collectives). The job
// is data-parallel when the world has more than one rank or dist.backend is set explicitly (mpi or
// nccl): then even a single rank runs every collective an 8-GPU job runs (reducer, start-up
// broadcast, distributed evaluation, replica checks, the preemption flag), which is how the one
// GPU of a check machine executes the multi-GPU path. Otherwise (auto, one rank) one plain process.
#pragma once

#include <memory>
#include <string>

#include "modtrain/config/config.h"
#include "modtrain/dist/collectives.h"
#include "modtrain/dist/communicator.h"
#include "modtrain/train/trainer.h"

namespace modtrain {

class DistributedTraining {
 public:
  DistributedTraining(const World& world, const Placement& placement, const Config& config);
  bool data_parallel() const { return comm_ != nullptr; }
  TrainComms comms();  // valid while this object lives
  Timeline& timeline() { return *timeline_; }
  // Writes the timeline (when dist.timeline is set) to <stem>-rank<R><ext>; returns the path or "".
  std::string write_timeline();
  // Collective, after training: shuts the data plane down cleanly (NCCL: finalize, waited for,
  // destroy) so that a finished job exits 0 only when that worked. On error paths the destructor aborts.
  void close();

 private:
  const Config& config_;
  int rank_;
  std::unique_ptr<Timeline> timeline_;
  std::unique_ptr<Communicator> comm_;
  std::unique_ptr<Collectives> collectives_;
};

}  // namespace modtrain
