// train.objective classify and mlm behind the objective seam (train/objective.h).
#include "modtrain/train/objective.h"

#include <cmath>
#include <cstdio>
#include <cstring>

#include "modtrain/core/log.h"
#include "modtrain/core/text.h"
#include "modtrain/train/loss.h"
#include "modtrain/train/precision.h"

namespace modtrain {
namespace {

using json = nlohmann::ordered_json;  // keys in insertion order: labels in the model's order

// Per label: positives and annotated records over the whole split, in one pass. Soft labels count
// their expected positives (the sum of the shares, rounded), as the loss sees them.
void label_counts(const PreparedDataset& data, std::vector<uint64_t>& positives, std::vector<uint64_t>& annotated) {
  // From the manifest when every shard's entry has them (prepared since version 3): no shard is read.
  const size_t labels = data.num_labels();
  const auto& entries = data.entries();
  if (std::all_of(entries.begin(), entries.end(), [&](const ShardEntry& e) {
        return e.label_sums.size() == labels && e.label_annotated.size() == labels;
      })) {
    std::vector<uint64_t> sums(labels, 0);
    annotated.assign(labels, 0);
    for (const ShardEntry& e : entries)
      for (size_t l = 0; l < labels; ++l) sums[l] += e.label_sums[l], annotated[l] += e.label_annotated[l];
    const double scale = static_cast<double>(data.manifest().schema().label_scale);
    positives.assign(labels, 0);
    for (size_t l = 0; l < labels; ++l)
      positives[l] = static_cast<uint64_t>(std::llround(static_cast<double>(sums[l]) / scale));
    return;
  }
  std::vector<double> sum(data.num_labels(), 0.0);
  annotated.assign(data.num_labels(), 0);
  for (size_t s = 0; s < data.num_shards(); ++s)
    for (uint64_t r = 0; r < data.shard(s).size(); ++r)
      for (size_t l = 0; l < sum.size(); ++l) {
        const float v = data.shard(s).label_value(r, l);
        if (v < 0.0f) continue;
        sum[l] += v;
        ++annotated[l];
      }
  positives.assign(sum.size(), 0);
  for (size_t l = 0; l < sum.size(); ++l) positives[l] = static_cast<uint64_t>(std::llround(sum[l]));
}

// ---- classify: a classifier head on the labels ---------------------------------------------------
class ClassifyObjective : public TrainingObjective {
 public:
  ClassifyObjective(const Config& c, const BertConfig& model, const PreparedDataset& train, const torch::Device& device)
      : TrainingObjective(c.data.labels.size(), c.eval.calibrate), config_(c), model_(make_classifier(model)) {
    loss_.problem = c.data.problem;
    loss_.label_smoothing = c.train.label_smoothing;
    if (c.data.problem == Problem::kMultiLabel && c.train.pos_weight.kind != PosWeight::Kind::kNone) {
      std::vector<double> weights = c.train.pos_weight.values;
      if (c.train.pos_weight.kind == PosWeight::Kind::kAuto) {
        std::vector<uint64_t> positives, annotated;
        label_counts(train, positives, annotated);
        weights = auto_pos_weight(positives, annotated, c.train.pos_weight_cap);
      }
      loss_.pos_weight = torch::tensor(weights, torch::kFloat32).to(device);
    }
  }

  torch::nn::Module& network() override { return *model_; }
  std::shared_ptr<ClassifierImpl> classifier() const override { return model_; }
  ImportReport import_weights(const std::string& dir, const Config& config, const Tokenizer& tokenizer) override {
    return import_huggingface(dir, *model_, config, tokenizer);
  }

  torch::Tensor loss_total(const Batch& batch, bool unpad, Precision precision, const torch::Device& device) override {
    torch::Tensor logits;
    {
      AutocastScope autocast(precision, device);
      logits = model_->logits(batch.input_ids, batch.attention_mask, unpad, device);  // [B, L]
    }
    return classification_loss_total(logits, batch.labels.to(device, true), batch.label_mask.to(device, true), loss_);
  }
  double loss_count(const Batch& batch) const override {
    return annotated_count(batch.label_mask, config_.data.problem);
  }
  const char* targets() const override { return "annotated labels"; }
  std::string no_targets_hint() const override { return "no annotated label"; }

  void log_start() const override {
    if (!loss_.pos_weight.defined()) return;
    std::string w;
    auto values = loss_.pos_weight.to(torch::kCPU);
    for (int64_t i = 0; i < values.numel(); ++i)
      w += (i ? ", " : "") + config_.data.labels[static_cast<size_t>(i)] + " " +
           std::to_string(values[i].item<float>()).substr(0, 5);
    log::info("pos_weight: " + w);
  }

  Evaluation evaluate(int64_t step, const PreparedDataset& valid, EvalOptions o, int rank) override {
    const Config& c = config_;
    o.labels = c.data.labels;
    o.problem = c.data.problem;
    o.loss = loss_;
    // Evaluation runs in fp32 even when training autocasts to bf16: on the GPU, bf16 scores ranked
    // worse (ROC-AUC 0.615 vs 0.730 on the same weights, docs/gpu-results.md), and thresholds tuned
    // on bf16 scores would not fit the fp32 scores that `predict` and exported models produce.
    o.bf16 = false;
    o.policy = c.eval.thresholds;
    o.min_precision = c.eval.min_precision;
    const EvalResult r = evaluate_model(*model_, valid, o);
    Evaluation e;
    e.metrics = json::parse(r.report.to_json());
    thresholds_ = r.thresholds;
    temperatures_ = r.temperatures;
    for (const auto& l : r.report.labels)
      if (rank == 0 && !l.calibration_skipped.empty())
        log::warn("eval @ step " + std::to_string(step) + ": eval.calibrate: label '" + l.name +
                  "' keeps temperature 1: " + l.calibration_skipped + " (recorded in eval.json and the model card)");
    for (size_t l = 0; l < thresholds_.size() && rank == 0; ++l) {
      const ThresholdPolicy& policy = c.eval.thresholds.for_label(c.data.labels[l]);
      if (thresholds_[l] >= kNeverFlagThreshold && policy.kind != ThresholdPolicy::Kind::kFixed)
        log::warn("eval @ step " + std::to_string(step) + ": label '" + c.data.labels[l] + "' will flag nothing: no " +
                  "threshold on data.valid reaches " +
                  (policy.kind == ThresholdPolicy::Kind::kPrecisionAt
                       ? "eval.thresholds' precision_at target"
                       : "precision " + text::format_double(c.eval.min_precision) + " (eval.min_precision)") +
                  "; train longer, or lower the target");
    }
    char line[256];
    std::snprintf(line, sizeof line,
                  "eval @ step %lld: loss %.4f  macro F1 %.3f  macro ROC-AUC %.3f  macro PR-AUC %.3f  micro F1 %.3f",
                  static_cast<long long>(step), r.report.loss, r.report.macro_f1, r.report.macro_roc_auc,
                  r.report.macro_pr_auc, r.report.micro_f1);
    if (!r.report.subgroups.empty()) {  // the bias figure a moderation team watches
      const size_t used = std::strlen(line);
      std::snprintf(line + used, sizeof line - used, "  worst subgroup AUC %.3f", r.report.worst_subgroup_auc);
    }
    e.line = line;
    switch (effective_best_metric(c)) {
      case BestMetric::kLoss: e.best_value = r.report.loss; break;
      case BestMetric::kMacroF1: e.best_value = r.report.macro_f1; break;
      case BestMetric::kMicroF1: e.best_value = r.report.micro_f1; break;
      case BestMetric::kMacroRocAuc: e.best_value = r.report.macro_roc_auc; break;
      case BestMetric::kMacroPrAuc: e.best_value = r.report.macro_pr_auc; break;
      case BestMetric::kAuto:
      case BestMetric::kNone: break;
    }
    last_ = r.report;
    return e;
  }
  EvalReport final_eval() const override { return last_; }

 private:
  const Config& config_;
  std::shared_ptr<ClassifierImpl> model_;
  LossOptions loss_;
  EvalReport last_;
};

// ---- mlm: a masked-language-model head on masked tokens ----------------------------------------
class MaskedLMObjective : public TrainingObjective {
 public:
  MaskedLMObjective(const Config& c, const BertConfig& model, const Tokenizer& tokenizer)
      : TrainingObjective(c.data.labels.size(), c.eval.calibrate),  // labels may be listed under mlm too
        config_(c),
        model_(make_masked_lm(model)),
        // needs the tokenizer's mask token (an error line says so when it has none)
        masker_(std::make_shared<TokenMasker>(tokenizer, MaskingOptions{c.mlm.probability, c.mlm.mask_fraction,
                                                                        c.mlm.random_fraction, c.mlm.whole_word})) {}

  torch::nn::Module& network() override { return *model_; }
  std::shared_ptr<MaskedLMImpl> masked_lm() const override { return model_; }
  ImportReport import_weights(const std::string& dir, const Config& config, const Tokenizer& tokenizer) override {
    return import_huggingface(dir, *model_, config, tokenizer);
  }
  std::shared_ptr<const TokenMasker> masker() const override { return masker_; }

  torch::Tensor loss_total(const Batch& batch, bool unpad, Precision precision, const torch::Device& device) override {
    torch::Tensor logits;
    {
      AutocastScope autocast(precision, device);
      logits = model_->logits(batch.input_ids, batch.attention_mask, batch.mlm_positions, batch.mlm_packed, unpad,
                              device);  // [M, V]: chosen tokens only
    }
    return mlm_loss_total(logits, batch.mlm_labels.to(device, true));
  }
  double loss_count(const Batch& batch) const override { return static_cast<double>(batch.masked); }
  const char* targets() const override { return "chosen tokens"; }
  std::string no_targets_hint() const override { return "masking chose no token: raise mlm.probability"; }

  void log_start() const override {
    const Config& c = config_;
    char line[256];
    std::snprintf(line, sizeof line,
                  "objective mlm: %.1f%% of the %s chosen per record (%.0f%% mask, %.0f%% random, %.0f%% kept), the "
                  "loss over the chosen tokens of all ranks",
                  100 * c.mlm.probability, c.mlm.whole_word ? "words (all their pieces)" : "tokens",
                  100 * c.mlm.mask_fraction, 100 * c.mlm.random_fraction,
                  100 * (1 - c.mlm.mask_fraction - c.mlm.random_fraction));
    log::info(line);
  }
  // The training perplexity of the window besides its masked-token loss.
  void window_extra(double mean_loss, nlohmann::ordered_json& event, std::string& text) const override {
    event["perplexity"] = std::exp(mean_loss);
    char ppl[48];
    std::snprintf(ppl, sizeof ppl, "ppl %.2f", std::exp(mean_loss));
    text = ppl;
  }

  Evaluation evaluate(int64_t step, const PreparedDataset& valid, EvalOptions o, int) override {
    o.masker = masker_;
    o.mask_seed = config_.run.seed;  // the same chosen tokens at every evaluation of the run
    const MlmEvalReport r = evaluate_mlm(*model_, valid, o);
    Evaluation e;
    e.metrics = json::parse(r.to_json());
    char line[256];
    if (r.tokens > 0)
      std::snprintf(line, sizeof line,
                    "eval @ step %lld: masked-token loss %.4f  accuracy %.3f  perplexity %.2f  (%lld tokens)",
                    static_cast<long long>(step), r.loss, r.accuracy, r.perplexity, static_cast<long long>(r.tokens));
    else
      std::snprintf(line, sizeof line,
                    "eval @ step %lld: no score: masking chose 0 tokens of data.valid's %lld records (raise "
                    "mlm.probability, or give data.valid more text); not a candidate for the best checkpoint",
                    static_cast<long long>(step), static_cast<long long>(r.records));
    e.line = line;
    if (effective_best_metric(config_) == BestMetric::kLoss) e.best_value = r.loss;
    last_ = r;
    return e;
  }
  MlmEvalReport final_mlm_eval() const override { return last_; }

 private:
  const Config& config_;
  std::shared_ptr<MaskedLMImpl> model_;
  std::shared_ptr<const TokenMasker> masker_;
  MlmEvalReport last_;
};

}  // namespace

std::unique_ptr<TrainingObjective> make_objective(const Config& config, const BertConfig& model,
                                                  const Tokenizer& tokenizer, const PreparedDataset& train,
                                                  const torch::Device& device) {
  switch (config.train.objective) {
    case Objective::kMlm: return std::make_unique<MaskedLMObjective>(config, model, tokenizer);
    case Objective::kClassify: break;
  }
  return std::make_unique<ClassifyObjective>(config, model, train, device);
}

}  // namespace modtrain
