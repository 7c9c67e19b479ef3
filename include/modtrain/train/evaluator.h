// Evaluation on a prepared split: every rank scores its part (in order, no shuffling; records
// repeated to even out the ranks are dropped) and sends its scores to rank 0 only. Rank 0 reads the
// targets and groups from the split, computes the exact metrics, tuned thresholds and temperatures
// from all scores in the split's order (so 1, 2 or 3 ranks give the same figures), and broadcasts
// the overall figures, thresholds and temperatures. Per rank: its share's scores; rank 0: O(records)
// (docs/scaling.md, "Evaluation").
#pragma once

#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "modtrain/data/dataset.h"
#include "modtrain/data/masking.h"
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
  ThresholdPolicies policy;              // how thresholds are tuned on these scores (per label)
  double min_precision = 0.0;            // the tuner's guard (eval.min_precision)
  std::vector<double> fixed_thresholds;  // if set: use these (e.g. the model's) instead of tuning
  double positive_at = 0.5;              // metrics: a (soft) target at least this is positive
  // Temperature scaling (multi_label): calibrate fits one per label on these records, against the
  // targets binarised at positive_at (the targets ECE and Brier score use; thresholds are then tuned
  // on the calibrated scores); else fixed_temperatures (e.g. the model's) apply.
  bool calibrate = false;
  std::vector<double> fixed_temperatures;
  uint64_t min_subgroup_records = 10;  // smaller subgroups are reported as too small
  uint64_t min_subgroup_class = 5;     // ... and those with fewer positives or negatives
  // The control plane: each rank scores its part and rank 0 gathers the scores. Null: this
  // process scores the whole split alone.
  Collectives* collectives = nullptr;
  // evaluate_mlm: the masker, drawn once from (mask_seed, record) so that every evaluation of a
  // run scores the same chosen tokens.
  std::shared_ptr<const TokenMasker> masker;
  uint64_t mask_seed = 0;
};

// On rank 0 (and in one process) everything. On the other ranks the report's overall figures
// (loss, records, the macro and micro figures, ECE, Brier, accuracy, worst subgroup AUC), the
// thresholds and the temperatures: no per-label tables and no per-record scores.
struct EvalResult {
  EvalReport report;
  std::vector<double> thresholds;
  std::vector<double> temperatures;         // per label; all 1 when neither fitted nor given
  std::vector<float> probs, targets, mask;  // every record, [N x L], on rank 0; targets as stored (soft labels too)
};

EvalResult evaluate_model(ClassifierImpl& model, const PreparedDataset& data, const EvalOptions& options);

// train.objective mlm on a validation split: the mean cross-entropy over the chosen tokens of all
// ranks, the share predicted exactly (argmax), and perplexity = exp(loss).
struct MlmEvalReport {
  double loss = 0, accuracy = 0, perplexity = 0;
  int64_t tokens = 0;   // chosen tokens scored, all ranks
  int64_t records = 0;  // records, all ranks (repeated ones dropped)
  std::string to_json() const;
};
MlmEvalReport evaluate_mlm(MaskedLMImpl& model, const PreparedDataset& data, const EvalOptions& options);

}  // namespace modtrain
