#include "modtrain/train/evaluator.h"

#include <limits>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

#include "modtrain/core/check.h"
#include "modtrain/data/loader.h"
#include "modtrain/data/raw_reader.h"
#include "modtrain/data/sampler.h"
#include "modtrain/train/precision.h"

namespace modtrain {

namespace {
// A rank's share of the split, in order; records repeated to even out the ranks are marked.
DistributedSampler rank_share(const PreparedDataset& data, const EvalOptions& o, int rank, int world) {
  return DistributedSampler(data.size(),
                            {0, rank, world, static_cast<uint32_t>(o.batch), /*shuffle=*/false, false, 64});
}
DistributedSampler rank_share(const PreparedDataset& data, const EvalOptions& o) {
  return rank_share(data, o, o.collectives ? o.collectives->rank() : 0, o.collectives ? o.collectives->size() : 1);
}

// For an evaluation's scope: the model in eval mode without gradients, its training mode given
// back at the end (also when an exception leaves), and this rank's share of the split in order.
class EvalPass {
 public:
  EvalPass(torch::nn::Module& model, const PreparedDataset& data, const EvalOptions& o)
      : model_(model), was_training_(model.is_training()), sampler(rank_share(data, o)) {
    model_.eval();
    loader.pad_id = o.pad_id;
  }
  ~EvalPass() {
    if (was_training_) model_.train();
  }
  EvalPass(const EvalPass&) = delete;
  EvalPass& operator=(const EvalPass&) = delete;

 private:
  torch::nn::Module& model_;
  bool was_training_;
  torch::NoGradGuard no_grad_;

 public:
  const DistributedSampler sampler;
  LoaderOptions loader;
};

// This rank's share scored: the logits of its records in its sampler's order (records repeated to
// even out the ranks dropped), [n x L], and its loss sum and count.
struct ShareScores {
  std::vector<float> logits;
  double loss_sum = 0, loss_count = 0;
};
ShareScores score_share(ClassifierImpl& model, const PreparedDataset& data, const EvalOptions& o) {
  EvalPass pass(model, data, o);
  ShareScores s;
  for (uint64_t b = 0; b < pass.sampler.batches_per_epoch(); ++b) {
    Batch batch = collate(data, pass.sampler.batch(0, b), pass.loader);
    torch::Tensor keep = batch.padding.logical_not();  // drop records repeated to even out ranks
    torch::Tensor logits;
    {
      AutocastScope autocast(o.bf16 ? Precision::kBf16 : Precision::kFp32, o.device);
      logits = model.logits(batch.input_ids, batch.attention_mask, o.unpad, o.device);
    }
    logits = logits.to(torch::kCPU, torch::kFloat32).index({keep}).contiguous();
    auto [sum, count] =
        classification_loss_sum(logits, batch.labels.index({keep}), batch.label_mask.index({keep}), o.loss);
    s.loss_sum += sum;
    s.loss_count += count;
    s.logits.insert(s.logits.end(), logits.data_ptr<float>(), logits.data_ptr<float>() + logits.numel());
  }
  return s;
}

// Rank 0: every rank's logits (parts[r], as score_share made them) put into the split's order, so
// that every figure (temperatures, ties among equal scores, the groups) is computed over the same
// sequence whatever the world size. Rank r's rows are its sampler's records in order, so rank 0
// walks each rank's sampler once: O(records) here, nothing on the other ranks (each rank used to
// rebuild every rank's sampler: O(world x records) in all).
std::vector<float> in_split_order(std::vector<std::vector<float>>& parts, const PreparedDataset& data,
                                  const EvalOptions& o, size_t L) {
  const uint64_t N = data.size();
  std::vector<float> out(N * L);
  std::vector<bool> placed(N, false);
  uint64_t total = 0;
  const int world = static_cast<int>(parts.size());
  for (int rank = 0; rank < world; ++rank) {
    std::vector<float>& part = parts[static_cast<size_t>(rank)];
    const DistributedSampler sampler = rank_share(data, o, rank, world);
    size_t row = 0;
    for (uint64_t b = 0; b < sampler.batches_per_epoch(); ++b) {
      const SampledBatch batch = sampler.batch(0, b);
      for (size_t i = 0; i < batch.indices.size(); ++i) {
        if (batch.padding[i]) continue;
        const uint64_t index = batch.indices[i];
        MT_CHECK((row + 1) * L <= part.size() && !placed[index],
                 "evaluation: rank " << rank << " sent " << part.size() / std::max<size_t>(L, 1)
                                     << " scores; its share names more, or record " << index << " twice");
        std::copy(part.begin() + static_cast<ptrdiff_t>(row * L), part.begin() + static_cast<ptrdiff_t>((row + 1) * L),
                  out.begin() + static_cast<ptrdiff_t>(index * L));
        placed[index] = true;
        ++row, ++total;
      }
    }
    MT_CHECK(row * L == part.size(), "evaluation: rank " << rank << " sent " << part.size() << " values for " << row
                                                         << " records of " << L << " labels");
    std::vector<float>().swap(part);  // freed once placed: the peak is the ordered copy plus what is left
  }
  MT_CHECK(total == N, "evaluated " << total << " of " << N << " records");
  return out;
}

// Rank 0: the targets as the loader makes them ([N x L], unannotated: 0 with mask 0), and the
// subgroup mentions and slice values, read from the prepared split in one pass (pages released as
// it goes). Only the scores travel between ranks.
struct SplitTargets {
  std::vector<float> targets, mask;
  RecordGroups groups;
};
SplitTargets split_targets(const PreparedDataset& data, const EvalOptions& o) {
  SplitTargets t;
  RecordGroups& g = t.groups;
  g.subgroups = data.subgroups();
  g.slice_by = data.slice_by();
  g.min_subgroup_records = o.min_subgroup_records;
  g.min_subgroup_class = o.min_subgroup_class;
  g.slice_values.resize(g.slice_by.size());
  const size_t L = data.num_labels();
  t.targets.resize(data.size() * L);
  t.mask.resize(data.size() * L);
  for (uint64_t index = 0; index < data.size(); ++index) {
    const PreparedDataset::Ref ref = data.locate(index);
    const PreparedShard& shard = data.record(ref);
    for (size_t k = 0; k < L; ++k) {
      const float v = shard.label_value(ref.record, k);  // as collate(): soft labels the share in [0, 1]
      t.targets[index * L + k] = v >= 0.0f ? v : 0.0f;
      t.mask[index * L + k] = v >= 0.0f ? 1.0f : 0.0f;
    }
    for (size_t k = 0; k < g.subgroups.size(); ++k) {
      const uint8_t v = shard.subgroup(ref.record, k);  // no value: not mentioned (as Jigsaw's NaN >= 0.5)
      g.mentions.push_back(v != kLabelUnannotated && v >= kSoftLabelScale / 2 ? 1 : 0);
    }
    for (size_t f = 0; f < g.slice_by.size(); ++f) {
      const std::string* value = shard.slice(ref.record, f);
      g.slice_values[f].push_back(value ? *value : "(none)");
    }
    if (index % 65536 == 65535) data.release_pages();
  }
  data.release_pages();
  return t;
}

// The exact report from every record's logits in the split's order (rank 0, or one process).
EvalResult report_from_logits(std::vector<float> logits_all, SplitTargets t, double loss, const EvalOptions& o) {
  EvalResult r;
  const size_t L = o.labels.size(), N = L ? logits_all.size() / L : 0;
  std::vector<float>& targets = t.targets;
  std::vector<float>& mask = t.mask;
  MT_CHECK(targets.size() == logits_all.size(),
           "evaluation: " << targets.size() << " targets for " << logits_all.size() << " scores");
  // The metrics see binary targets: a soft label counts as positive from positive_at (Jigsaw: 0.5).
  std::vector<float> binary(targets.size());
  for (size_t i = 0; i < targets.size(); ++i) binary[i] = targets[i] >= o.positive_at ? 1.0f : 0.0f;
  // Each label's annotated logits and binarised targets, once: the temperature fit and the report use them.
  std::vector<std::vector<double>> z(L), y(L);
  for (size_t i = 0; i < N; ++i)
    for (size_t l = 0; l < L; ++l)
      if (mask[i * L + l] != 0) z[l].push_back(logits_all[i * L + l]), y[l].push_back(binary[i * L + l]);
  // Temperatures: fitted per label on the annotated records' binarised targets, or given, or none.
  std::vector<TemperatureFit> fits(L);
  r.temperatures.assign(L, 1.0);
  if (o.problem == Problem::kMultiLabel && o.calibrate) {
    for (size_t l = 0; l < L; ++l) {
      fits[l] = fit_temperature(z[l], y[l]);
      r.temperatures[l] = fits[l].temperature;
    }
  } else if (o.problem == Problem::kMultiLabel && !o.fixed_temperatures.empty()) {
    MT_CHECK(o.fixed_temperatures.size() == L, o.fixed_temperatures.size() << " temperatures for " << L << " labels");
    r.temperatures = o.fixed_temperatures;
  }
  const bool scaled = std::any_of(r.temperatures.begin(), r.temperatures.end(), [](double t) { return t != 1.0; });
  auto probs_of = [&](const std::vector<double>& temperatures) {
    torch::Tensor x =
        torch::from_blob(logits_all.data(), {static_cast<int64_t>(N), static_cast<int64_t>(L)}, torch::kFloat32);
    torch::Tensor p = probabilities(x, o.problem, temperatures).contiguous();
    return std::vector<float>(p.data_ptr<float>(), p.data_ptr<float>() + p.numel());
  };
  std::vector<float> probs = probs_of(scaled ? r.temperatures : std::vector<double>{});
  r.thresholds = o.fixed_thresholds;
  if (r.thresholds.empty()) {  // tuned on the calibrated scores
    for (size_t l = 0; l < L; ++l)
      r.thresholds.push_back(o.problem == Problem::kMultiLabel
                                 ? tune_threshold(label_scores(probs, binary, mask, L, l),
                                                  o.policy.for_label(o.labels[l]), o.min_precision)
                                 : 0.5);
  }
  r.report = evaluate_scores(o.labels, o.problem, probs, binary, mask, r.thresholds, loss, &t.groups);
  if (scaled || o.calibrate) {
    const std::vector<float> raw = probs_of({});
    for (size_t l = 0; l < L; ++l) {
      LabelReport& lr = r.report.labels[l];
      lr.calibrated = true;
      lr.temperature = r.temperatures[l];
      lr.temperature_at_bound = fits[l].at_bound;
      lr.calibration_skipped = fits[l].skipped;
      lr.nll_uncalibrated = z[l].empty() ? std::nan("") : binary_nll(z[l], y[l], 1.0);
      lr.nll_calibrated = z[l].empty() ? std::nan("") : binary_nll(z[l], y[l], lr.temperature);
      lr.ece_uncalibrated = calibration(label_scores(raw, binary, mask, L, l)).ece;
    }
  }
  r.probs = std::move(probs);
  r.targets = std::move(targets);
  r.mask = std::move(mask);
  return r;
}

// What rank 0 sends the other ranks: the report's overall figures, then the thresholds and the
// temperatures (14 + 2 x labels doubles at any split size).
constexpr size_t kSummaryFigures = 14;
std::vector<double> summary_values(const EvalResult& r, size_t L) {
  const EvalReport& e = r.report;
  std::vector<double> v = {e.loss,
                           static_cast<double>(e.records),
                           e.macro_precision,
                           e.macro_recall,
                           e.macro_f1,
                           e.macro_roc_auc,
                           e.macro_pr_auc,
                           e.micro_precision,
                           e.micro_recall,
                           e.micro_f1,
                           e.macro_ece,
                           e.macro_brier,
                           e.accuracy,
                           e.worst_subgroup_auc};
  v.insert(v.end(), r.thresholds.begin(), r.thresholds.end());
  v.insert(v.end(), r.temperatures.begin(), r.temperatures.end());
  MT_CHECK(v.size() == kSummaryFigures + 2 * L, "evaluation summary of " << v.size() << " values");
  return v;
}
EvalResult from_summary(const std::vector<double>& v, size_t L) {
  EvalResult r;
  EvalReport& e = r.report;
  e.loss = v[0];
  e.records = static_cast<uint64_t>(v[1]);
  size_t k = 2;
  for (double* field :
       {&e.macro_precision, &e.macro_recall, &e.macro_f1, &e.macro_roc_auc, &e.macro_pr_auc, &e.micro_precision,
        &e.micro_recall, &e.micro_f1, &e.macro_ece, &e.macro_brier, &e.accuracy, &e.worst_subgroup_auc})
    *field = v[k++];
  r.thresholds.assign(v.begin() + static_cast<ptrdiff_t>(k), v.begin() + static_cast<ptrdiff_t>(k + L));
  r.temperatures.assign(v.begin() + static_cast<ptrdiff_t>(k + L), v.begin() + static_cast<ptrdiff_t>(k + 2 * L));
  return r;
}
}  // namespace

EvalResult evaluate_model(ClassifierImpl& model, const PreparedDataset& data, const EvalOptions& o) {
  const size_t L = o.labels.size();
  MT_CHECK(L == data.num_labels(), "evaluation of " << L << " labels on a split of " << data.num_labels());
  ShareScores share = score_share(model, data, o);
  // Every rank's scores go to rank 0 only, which computes the exact figures (the AUCs, tuned
  // thresholds and temperatures need every score in one place) and sends each rank the few it uses.
  Collectives* c = o.collectives;
  std::vector<double> loss = {share.loss_sum, share.loss_count};
  if (c) c->sum(loss, "evaluation loss");
  std::vector<std::vector<float>> parts;
  if (c) parts = c->gather_to_root(share.logits, "evaluation scores");
  else parts.push_back(std::move(share.logits));
  std::vector<double> summary(kSummaryFigures + 2 * L);
  EvalResult r;
  if (!c || c->rank() == 0) {
    std::vector<float> logits = in_split_order(parts, data, o, L);
    r = report_from_logits(std::move(logits), split_targets(data, o), loss[1] > 0 ? loss[0] / loss[1] : 0.0, o);
    summary = summary_values(r, L);
  }
  if (c) c->broadcast(summary, "evaluation figures");
  if (c && c->rank() != 0) r = from_summary(summary, L);
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

MlmEvalReport evaluate_mlm(MaskedLMImpl& model, const PreparedDataset& data, const EvalOptions& o) {
  MT_CHECK(o.masker, "evaluate_mlm without a masker");
  EvalPass pass(model, data, o);
  pass.loader.masker = o.masker;
  pass.loader.mask_seed = o.mask_seed;  // mask_batches_per_epoch 0: one fixed draw per record
  torch::Tensor loss = torch::zeros({}, torch::TensorOptions().device(o.device).dtype(torch::kFloat64));
  torch::Tensor correct = torch::zeros({}, torch::TensorOptions().device(o.device).dtype(torch::kInt64));
  double tokens = 0, records = 0;
  for (uint64_t b = 0; b < pass.sampler.batches_per_epoch(); ++b) {
    Batch batch = collate(data, pass.sampler.batch(0, b), pass.loader);
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
  std::vector<double> sums = {loss.item<double>(), static_cast<double>(correct.item<int64_t>()), tokens, records};
  if (o.collectives) o.collectives->sum(sums, "masked-token evaluation");
  MlmEvalReport r;
  r.tokens = static_cast<int64_t>(sums[2]);
  r.records = static_cast<int64_t>(sums[3]);
  // Over zero chosen tokens there is no score (it used to read loss 0, perplexity 1: perfect, and
  // became the best checkpoint): NaN, which track_best never picks and JSON writes as null.
  const double none = std::numeric_limits<double>::quiet_NaN();
  r.loss = sums[2] > 0 ? sums[0] / sums[2] : none;
  r.accuracy = sums[2] > 0 ? sums[1] / sums[2] : none;
  r.perplexity = std::exp(r.loss);
  return r;
}

}  // namespace modtrain
