// The objective seam: what differs between training a classifier on labels (train.objective
// classify) and a masked-language model on masked tokens (mlm), and what a third objective
// (distillation, a regression score, contrastive) would implement: the model it trains, what the
// loader adds to a batch, the loss and the count it is normalised by, the start line, the log
// window's extra fields, evaluation and its log line, the value the best checkpoint tracks, and
// what the model directory records. The trainer calls it and never asks which objective runs.
#pragma once

#include <torch/torch.h>

#include <limits>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "modtrain/config/config.h"
#include "modtrain/data/dataset.h"
#include "modtrain/data/loader.h"
#include "modtrain/data/masking.h"
#include "modtrain/data/tokenizer.h"
#include "modtrain/model/model.h"
#include "modtrain/modelio/hf_import.h"
#include "modtrain/modelio/model_dir.h"
#include "modtrain/train/evaluator.h"

namespace modtrain {

class TrainingObjective {
 public:
  virtual ~TrainingObjective() = default;

  // The model this objective trains (built in the constructor, initialised from torch's generator).
  virtual torch::nn::Module& network() = 0;
  virtual std::shared_ptr<ClassifierImpl> classifier() const { return nullptr; }
  virtual std::shared_ptr<MaskedLMImpl> masked_lm() const { return nullptr; }
  // model.init_from: a Hugging Face directory's weights into the model.
  virtual ImportReport import_weights(const std::string& dir, const Config& config, const Tokenizer& tokenizer) = 0;
  // What the loader adds to every batch (mlm: the masked tokens); null: nothing.
  virtual std::shared_ptr<const TokenMasker> masker() const { return nullptr; }

  // The micro batch's loss numerator on `device` (its sum over targets), and what it is divided by,
  // counted on the host (summed over ranks and micro steps by the trainer).
  virtual torch::Tensor loss_total(const Batch& batch, bool unpad, Precision precision,
                                   const torch::Device& device) = 0;
  virtual double loss_count(const Batch& batch) const = 0;
  virtual const char* targets() const = 0;          // "annotated labels", "chosen tokens"
  virtual std::string no_targets_hint() const = 0;  // why a step can have none, and the fix

  virtual void log_start() const {}  // rank 0's start lines besides the trainer's
  // The log window's extra figures: into the metrics event, and a short text for the progress line.
  virtual void window_extra(double mean_loss, nlohmann::ordered_json& event, std::string& text) const {
    (void)mean_loss, (void)event, (void)text;
  }

  struct Evaluation {
    nlohmann::ordered_json metrics;                                // metrics.jsonl and eval.json
    std::string line;                                              // the log line
    double best_value = std::numeric_limits<double>::quiet_NaN();  // what checkpoint.best_metric tracks
  };
  // One evaluation on data.valid (collective: every rank calls it). `shared` holds what every
  // evaluation shares (batch, device, path, ranks); `step` names it in warnings.
  virtual Evaluation evaluate(int64_t step, const PreparedDataset& valid, EvalOptions shared, int rank) = 0;
  virtual EvalReport final_eval() const { return {}; }
  virtual MlmEvalReport final_mlm_eval() const { return {}; }
  // What the model directory records of the objective: the thresholds, and the temperatures
  // under eval.calibrate.
  virtual void describe(ModelMeta& meta) const {
    meta.thresholds = thresholds_;
    if (calibrate_) meta.temperatures = temperatures_;
  }
  const std::vector<double>& thresholds() const { return thresholds_; }

 protected:
  TrainingObjective(size_t labels, bool calibrate)
      : thresholds_(labels, 0.5), temperatures_(labels, 1.0), calibrate_(calibrate) {}
  std::vector<double> thresholds_;    // per label, from the latest evaluation (0.5 before any)
  std::vector<double> temperatures_;  // likewise (eval.calibrate; 1 before any)
  bool calibrate_ = false;
};

// train.objective's objective for this config and model, on `device`. `train` is the training
// split (classify: train.pos_weight auto counts its labels).
std::unique_ptr<TrainingObjective> make_objective(const Config& config, const BertConfig& model,
                                                  const Tokenizer& tokenizer, const PreparedDataset& train,
                                                  const torch::Device& device);

}  // namespace modtrain
