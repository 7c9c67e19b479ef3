#include "modtrain/train/evaluator.h"

#include <cmath>
#include <nlohmann/json.hpp>

#include "modtrain/core/check.h"
#include "modtrain/data/loader.h"
#include "modtrain/data/sampler.h"
#include "modtrain/train/precision.h"

namespace modtrain {

torch::Tensor probabilities(const torch::Tensor& logits, Problem problem) {
  torch::Tensor x = logits.to(torch::kFloat32);
  return problem == Problem::kMultiLabel ? torch::sigmoid(x) : torch::softmax(x, 1);
}

namespace {
// This rank's share of the split, in order; records repeated to even out the ranks are marked.
DistributedSampler rank_share(const PreparedDataset& data, const EvalOptions& o) {
  const int rank = o.collectives ? o.collectives->rank() : 0, world = o.collectives ? o.collectives->size() : 1;
  return DistributedSampler(data.size(),
                            {0, rank, world, static_cast<uint32_t>(o.batch), /*shuffle=*/false, false, 64});
}
}  // namespace

EvalResult evaluate_model(BertForClassificationImpl& model, const PreparedDataset& data, const EvalOptions& o) {
  const bool was_training = model.is_training();
  model.eval();
  torch::NoGradGuard no_grad;
  const DistributedSampler sampler = rank_share(data, o);
  LoaderOptions loader_options;
  loader_options.pad_id = o.pad_id;
  std::vector<float> probs, targets, mask;
  double loss_sum = 0, loss_count = 0;
  for (uint64_t b = 0; b < sampler.batches_per_epoch(); ++b) {
    Batch batch = collate(data, sampler.batch(0, b), loader_options);
    torch::Tensor keep = batch.padding.logical_not();  // drop records repeated to even out ranks
    torch::Tensor logits;
    {
      AutocastScope autocast(o.bf16 ? Precision::kBf16 : Precision::kFp32, o.device);
      logits = model.logits(batch.input_ids, batch.attention_mask, o.unpad, o.device);
    }
    logits = logits.to(torch::kCPU, torch::kFloat32).index({keep});
    torch::Tensor labels = batch.labels.index({keep}), label_mask = batch.label_mask.index({keep});
    auto [sum, count] = classification_loss_sum(logits, labels, label_mask, o.loss);
    loss_sum += sum;
    loss_count += count;
    torch::Tensor p = probabilities(logits, o.problem).contiguous();
    probs.insert(probs.end(), p.data_ptr<float>(), p.data_ptr<float>() + p.numel());
    targets.insert(targets.end(), labels.data_ptr<float>(), labels.data_ptr<float>() + labels.numel());
    mask.insert(mask.end(), label_mask.data_ptr<float>(), label_mask.data_ptr<float>() + label_mask.numel());
  }
  if (was_training) model.train();

  EvalResult r;
  if (o.collectives) {
    // One gather of [probs | targets | mask] per rank (each part records x labels), one sum of the loss.
    const size_t mine = probs.size();
    std::vector<float> packed = probs;
    packed.insert(packed.end(), targets.begin(), targets.end());
    packed.insert(packed.end(), mask.begin(), mask.end());
    const std::vector<std::vector<float>> parts = o.collectives->all_gather(packed, "evaluation scores");
    probs.clear(), targets.clear(), mask.clear();
    for (const auto& part : parts) {
      const size_t n = part.size() / 3;
      MT_CHECK(part.size() == 3 * n, "evaluation part of " << part.size() << " values (this rank: " << 3 * mine << ")");
      probs.insert(probs.end(), part.begin(), part.begin() + static_cast<ptrdiff_t>(n));
      targets.insert(targets.end(), part.begin() + static_cast<ptrdiff_t>(n),
                     part.begin() + static_cast<ptrdiff_t>(2 * n));
      mask.insert(mask.end(), part.begin() + static_cast<ptrdiff_t>(2 * n), part.end());
    }
    std::vector<double> loss = {loss_sum, loss_count};
    o.collectives->sum(loss, "evaluation loss");
    loss_sum = loss[0];
    loss_count = loss[1];
  }
  const size_t L = o.labels.size();
  r.thresholds = o.fixed_thresholds;
  if (r.thresholds.empty()) {
    for (size_t l = 0; l < L; ++l)
      r.thresholds.push_back(
          o.problem == Problem::kMultiLabel ? tune_threshold(label_scores(probs, targets, mask, L, l), o.policy) : 0.5);
  }
  r.report = evaluate_scores(o.labels, o.problem, probs, targets, mask, r.thresholds,
                             loss_count > 0 ? loss_sum / loss_count : 0.0);
  r.probs = std::move(probs);
  r.targets = std::move(targets);
  r.mask = std::move(mask);
  return r;
}

std::string MlmEvalReport::to_json() const {
  return nlohmann::json({{"mlm_loss", loss},
                         {"mlm_accuracy", accuracy},
                         {"perplexity", perplexity},
                         {"masked_tokens", tokens},
                         {"records", records}})
      .dump();
}

MlmEvalReport evaluate_mlm(BertForMaskedLMImpl& model, const PreparedDataset& data, const EvalOptions& o) {
  MT_CHECK(o.masker, "evaluate_mlm without a masker");
  const bool was_training = model.is_training();
  model.eval();
  torch::NoGradGuard no_grad;
  const DistributedSampler sampler = rank_share(data, o);
  LoaderOptions loader_options;
  loader_options.pad_id = o.pad_id;
  loader_options.masker = o.masker;
  loader_options.mask_seed = o.mask_seed;  // mask_batches_per_epoch 0: one fixed draw per record
  torch::Tensor loss = torch::zeros({}, torch::TensorOptions().device(o.device).dtype(torch::kFloat64));
  torch::Tensor correct = torch::zeros({}, torch::TensorOptions().device(o.device).dtype(torch::kInt64));
  double tokens = 0, records = 0;
  for (uint64_t b = 0; b < sampler.batches_per_epoch(); ++b) {
    Batch batch = collate(data, sampler.batch(0, b), loader_options);
    records += static_cast<double>(batch.padding.logical_not().sum().item<int64_t>());
    if (batch.masked == 0) continue;
    torch::Tensor logits;
    {
      AutocastScope autocast(o.bf16 ? Precision::kBf16 : Precision::kFp32, o.device);
      logits =
          model.logits(batch.input_ids, batch.attention_mask, batch.mlm_positions, batch.mlm_packed, o.unpad, o.device);
    }
    torch::Tensor targets = batch.mlm_labels.to(o.device);
    loss += mlm_loss_total(logits, targets).to(torch::kFloat64);
    correct += logits.argmax(1).eq(targets).sum();
    tokens += static_cast<double>(batch.masked);
  }
  if (was_training) model.train();
  std::vector<double> sums = {loss.item<double>(), static_cast<double>(correct.item<int64_t>()), tokens, records};
  if (o.collectives) o.collectives->sum(sums, "masked-token evaluation");
  MlmEvalReport r;
  r.tokens = static_cast<int64_t>(sums[2]);
  r.records = static_cast<int64_t>(sums[3]);
  r.loss = sums[2] > 0 ? sums[0] / sums[2] : 0.0;
  r.accuracy = sums[2] > 0 ? sums[1] / sums[2] : 0.0;
  r.perplexity = std::exp(r.loss);
  return r;
}

}  // namespace modtrain
