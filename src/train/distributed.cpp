#include "modtrain/train/distributed.h"

#include <filesystem>

#include "modtrain/core/log.h"
#include "modtrain/dist/bucketed_reducer.h"
#include "modtrain/dist/transport.h"

namespace modtrain {

DistributedTraining::DistributedTraining(const World& world, const Placement& placement, const Config& config)
    : config_(config),
      rank_(world.rank()),
      timeline_(std::make_unique<Timeline>(!config.dist.timeline.empty(), world.rank())) {
#ifdef MODTRAIN_HAVE_NCCL
  if (timeline_->enabled() && placement.cuda) timeline_->set_device_clock(make_cuda_clock(placement.cuda_index));
#endif
  if (world.size() == 1 && config.dist.backend == Backend::kAuto) {  // one plain process
    if (config.dist.grad_reduce_dtype != GradReduceDtype::kFp32)
      log::info("dist.grad_reduce_dtype = " + std::string(to_string(config.dist.grad_reduce_dtype)) +
                ": one process reduces nothing; its gradients stay fp32");
    return;
  }
  comm_ = make_communicator(config.dist.backend, world, placement, CommOptions{config.dist.timeout_s, timeline_.get()});
  collectives_ = make_mpi_collectives(world, config.dist.timeout_s, timeline_.get());
  if (comm_->backend() == "nccl") {  // every rank or none: the ranks agreed on the backend at start-up
    // NCCL's choice beside MPI's (dist/device.cpp): a node that fell back to sockets shows here.
    const std::vector<std::string> transports = collectives_->all_gather_text(comm_->transport(), "NCCL transports");
    const std::vector<std::string> hosts = collectives_->all_gather_text(world.hostname(), "host names");
    bool differs = false;
    const std::string line = transport_summary("NCCL", transports, hosts, &differs);
    if (world.is_root()) differs ? log::warn(line) : log::info(line);
  }
}

TrainComms DistributedTraining::comms() {
  TrainComms comms;
  comms.timeline = timeline_.get();
  if (!comm_) return comms;
  comms.collectives = collectives_.get();
  comms.backend = comm_->backend();
  comms.communicator = comm_.get();
  Communicator* comm = comm_.get();
  Collectives* collectives = collectives_.get();
  Timeline* timeline = timeline_.get();
  const torch::ScalarType wire =
      config_.dist.grad_reduce_dtype == GradReduceDtype::kBf16 ? torch::kBFloat16 : torch::kFloat32;
  comms.make_reducer = [comm, collectives, timeline, wire](FlatParams& flat) -> std::unique_ptr<GradientReducer> {
    return std::make_unique<BucketedReducer>(flat, *comm, *collectives, timeline, wire);
  };
  return comms;
}

void DistributedTraining::close() {
  if (comm_) comm_->close();
}

std::string DistributedTraining::write_timeline() {
  if (!timeline_->enabled()) return "";
  std::filesystem::path p(config_.dist.timeline);
  std::string path =
      (p.parent_path() / (p.stem().string() + "-rank" + std::to_string(rank_) + p.extension().string())).string();
  if (!p.parent_path().empty()) std::filesystem::create_directories(p.parent_path());
  timeline_->write(path);
  return path;
}

}  // namespace modtrain
