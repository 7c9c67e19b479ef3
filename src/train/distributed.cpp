#include "modtrain/train/distributed.h"

#include <filesystem>

namespace modtrain {

DistributedTraining::DistributedTraining(const World& world, const Placement& placement, const Config& config)
    : config_(config),
      rank_(world.rank()),
      world_(world.size()),
      timeline_(std::make_unique<Timeline>(!config.dist.timeline.empty(), world.rank())) {
  comms_.rank = world.rank();
  comms_.world = world.size();
  comms_.timeline = timeline_.get();
  if (world.size() == 1) return;
  comm_ = make_communicator(config.dist.backend, world, placement, CommOptions{config.dist.timeout_s, timeline_.get()});
  Communicator* comm = comm_.get();
  comms_.all_gather = [comm](const std::vector<float>& values) {
    return comm->all_gather_varlen(values, "evaluation scores");
  };
}

std::function<std::unique_ptr<GradientSync>(BertForClassificationImpl&)> DistributedTraining::sync_factory() {
  if (!comm_) return nullptr;
  Communicator* comm = comm_.get();
  Timeline* timeline = timeline_.get();
  ReducerOptions options;
  options.bucket_cap_bytes = static_cast<size_t>(config_.dist.bucket_mb * 1024 * 1024);
  options.first_bucket_cap_bytes = std::min<size_t>(options.bucket_cap_bytes, 1u << 20);
  return [comm, timeline, options](BertForClassificationImpl& model) -> std::unique_ptr<GradientSync> {
    std::vector<std::pair<std::string, torch::Tensor>> params;
    for (const auto& p : model.named_parameters()) params.emplace_back(p.key(), p.value());
    return std::make_unique<GradReducer>(params, *comm, options, timeline);
  };
}

std::string DistributedTraining::write_timeline() const {
  if (!timeline_->enabled()) return "";
  std::filesystem::path p(config_.dist.timeline);
  std::string path =
      (p.parent_path() / (p.stem().string() + "-rank" + std::to_string(rank_) + p.extension().string())).string();
  if (!p.parent_path().empty()) std::filesystem::create_directories(p.parent_path());
  timeline_->write(path);
  return path;
}

}  // namespace modtrain
