// Evaluation on a prepared split: every rank scores its part (in order, no shuffling; records
// repeated to even out the ranks are dropped), the parts are gathered, and the exact metrics and
// tuned thresholds are computed from all scores.
#pragma once

#include <torch/torch.h>

#include <vector>

#include "modtrain/data/dataset.h"
#include "modtrain/dist/collectives.h"
#include "modtrain/model/bert.h"
#include "modtrain/train/loss.h"
#include "modtrain/train/metrics.h"

namespace modtrain {

struct EvalOptions {
  std::vector<std::string> labels;
  Problem problem = Problem::kMultiLabel;
  LossOptions loss;
  int64_t batch = 64;
  int64_t pad_id = 0;
  torch::Device device = torch::kCPU;
  bool bf16 = false;                     // autocast the forward pass (CUDA)
  bool unpad = false;                    // the padding-free path (model.unpad; equal logits within 1e-5)
  ThresholdPolicy policy;                // how thresholds are tuned on these scores
  std::vector<double> fixed_thresholds;  // if set: use these (e.g. the model's) instead of tuning
  // The control plane: each rank scores its part and the parts are gathered. Null: this process
  // scores the whole split alone.
  Collectives* collectives = nullptr;
};

struct EvalResult {
  EvalReport report;
  std::vector<double> thresholds;
  std::vector<float> probs, targets, mask;  // all ranks' records, [N x L]
};

EvalResult evaluate_model(BertForClassificationImpl& model, const PreparedDataset& data, const EvalOptions& options);

// Probabilities from logits: sigmoid (multi_label) or softmax (multi_class).
torch::Tensor probabilities(const torch::Tensor& logits, Problem problem);

}  // namespace modtrain
