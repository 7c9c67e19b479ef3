// The trainer: builds the model, optimiser, schedule, loss and data from the config and runs
// the step loop (accumulation, precision, clipping, non-finite handling), with logging and
// evaluation in fenced periodic blocks. Data-parallel through the GradientSync seam.
#pragma once

#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "modtrain/config/loader.h"
#include "modtrain/data/loader.h"
#include "modtrain/data/wordpiece.h"
#include "modtrain/dist/device.h"
#include "modtrain/dist/grad_sync.h"
#include "modtrain/dist/timeline.h"
#include "modtrain/model/bert.h"
#include "modtrain/train/evaluator.h"
#include "modtrain/train/precision.h"
#include "modtrain/train/run_dir.h"

namespace modtrain {

struct TrainOutcome {
  int64_t steps = 0;
  int64_t skipped_steps = 0;  // non-finite gradients
  double last_loss = 0;
  EvalReport final_eval;      // empty when there is no validation data
  std::vector<double> thresholds;
  std::string model_dir;
};

// Hooks for collectives beyond the gradient seam (world size 1: all null).
struct TrainComms {
  int rank = 0, world = 1;
  std::function<std::vector<float>(const std::vector<float>&)> all_gather;  // evaluation scores
  Timeline* timeline = nullptr;  // forward / backward / optimiser spans (dist.timeline)
};

class Trainer {
 public:
  Trainer(const ResolvedConfig& resolved, const Placement& placement, TrainComms comms,
          std::function<std::unique_ptr<GradientSync>(BertForClassificationImpl&)> make_sync = nullptr);
  TrainOutcome run();

  BertForClassification& model() { return model_; }
  int64_t total_steps() const { return total_steps_; }

 private:
  struct StepStats {
    double loss = 0, grad_norm = 0;
    int64_t samples = 0, tokens = 0;
    bool skipped = false;
  };
  StepStats train_step(int64_t step);
  void zero_grad();
  EvalResult evaluate();
  void log_start() const;

  ResolvedConfig resolved_;
  const Config& config_;
  Placement placement_;
  TrainComms comms_;
  torch::Device device_;
  std::shared_ptr<Vocab> vocab_;
  std::shared_ptr<PreparedDataset> train_data_, valid_data_;
  std::shared_ptr<DistributedSampler> sampler_;
  std::unique_ptr<Loader> loader_;
  BertConfig bert_config_;
  BertForClassification model_{nullptr};
  std::unique_ptr<torch::optim::AdamW> optimizer_;
  std::unique_ptr<GradientSync> sync_;
  LossOptions loss_options_;
  LossScaler scaler_;
  RunDir run_dir_;
  int64_t total_steps_ = 0;
};

}  // namespace modtrain
