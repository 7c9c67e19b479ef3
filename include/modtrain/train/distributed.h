// Wiring data parallelism into the trainer: the communicator for dist.backend, the timeline, the
// gradient reducer factory and the evaluation gather, for a world of any size (one rank: none).
#pragma once

#include <memory>
#include <string>

#include "modtrain/config/config.h"
#include "modtrain/dist/communicator.h"
#include "modtrain/dist/grad_reducer.h"
#include "modtrain/train/trainer.h"

namespace modtrain {

class DistributedTraining {
 public:
  DistributedTraining(const World& world, const Placement& placement, const Config& config);
  const TrainComms& comms() const { return comms_; }
  std::function<std::unique_ptr<GradientSync>(BertForClassificationImpl&)> sync_factory();
  Communicator* communicator() { return comm_.get(); }
  Timeline& timeline() { return *timeline_; }
  // Writes the timeline (when dist.timeline is set) to <stem>-rank<R><ext>; returns the path or "".
  std::string write_timeline() const;

 private:
  const Config& config_;
  int rank_, world_;
  std::unique_ptr<Timeline> timeline_;
  std::unique_ptr<Communicator> comm_;
  TrainComms comms_;
};

}  // namespace modtrain
