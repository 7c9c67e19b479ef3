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

// The global record indices in the order the gather puts the records (rank 0's share, then rank
// 1's, ...; repeated records left out).
std::vector<uint64_t> gathered_indices(const PreparedDataset& data, const EvalOptions& o) {
  std::vector<uint64_t> out;
  const int world = o.collectives ? o.collectives->size() : 1;
  for (int rank = 0; rank < world; ++rank) {
    const DistributedSampler sampler = rank_share(data, o, rank, world);
    for (uint64_t b = 0; b < sampler.batches_per_epoch(); ++b) {
      const SampledBatch batch = sampler.batch(0, b);
      for (size_t i = 0; i < batch.indices.size(); ++i)
        if (!batch.padding[i]) out.push_back(batch.indices[i]);
    }
  }
  return out;
}

// Rows [N x width] put into the order `perm` gives (row k = old row perm[k]).
void permute_rows(std::vector<float>& v, const std::vector<size_t>& perm, size_t width) {
  std::vector<float> out(v.size());
  for (size_t k = 0; k < perm.size(); ++k)
    std::copy(v.begin() + static_cast<std::ptrdiff_t>(perm[k] * width),
              v.begin() + static_cast<std::ptrdiff_t>((perm[k] + 1) * width),
              out.begin() + static_cast<std::ptrdiff_t>(k * width));
  v = std::move(out);
}

// The subgroup mentions and slice values of records 0..N-1. Every rank reads them from its own copy
// of the prepared split, so only the scores travel.
RecordGroups record_groups(const PreparedDataset& data, const EvalOptions& o) {
  RecordGroups g;
  g.subgroups = data.subgroups();
  g.slice_by = data.slice_by();
  g.min_subgroup_records = o.min_subgroup_records;
  g.min_subgroup_class = o.min_subgroup_class;
  g.slice_values.resize(g.slice_by.size());
  if (g.subgroups.empty() && g.slice_by.empty()) return g;
  for (uint64_t index = 0; index < data.size(); ++index) {
    const PreparedDataset::Ref ref = data.locate(index);
    const PreparedShard& shard = data.shard(ref.shard);
    for (size_t k = 0; k < g.subgroups.size(); ++k) {
      const uint8_t v = shard.subgroup(ref.record, k);  // no value: not mentioned (as Jigsaw's NaN >= 0.5)
      g.mentions.push_back(v != kLabelUnannotated && v >= kSoftLabelScale / 2 ? 1 : 0);
    }
    for (size_t f = 0; f < g.slice_by.size(); ++f) {
      const std::string* value = shard.slice(ref.record, f);
      g.slice_values[f].push_back(value ? *value : "(none)");
    }
  }
  return g;
}
}  // namespace

EvalResult evaluate_model(ClassifierImpl& model, const PreparedDataset& data, const EvalOptions& o) {
  const bool was_training = model.is_training();
  model.eval();
  torch::NoGradGuard no_grad;
  const DistributedSampler sampler = rank_share(data, o);
  LoaderOptions loader_options;
  loader_options.pad_id = o.pad_id;
  std::vector<float> logits_all, targets, mask;
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
    logits = logits.contiguous();
    logits_all.insert(logits_all.end(), logits.data_ptr<float>(), logits.data_ptr<float>() + logits.numel());
    targets.insert(targets.end(), labels.data_ptr<float>(), labels.data_ptr<float>() + labels.numel());
    mask.insert(mask.end(), label_mask.data_ptr<float>(), label_mask.data_ptr<float>() + label_mask.numel());
  }
  if (was_training) model.train();

  EvalResult r;
  if (o.collectives) {
    // One gather of [logits | targets | mask] per rank (each part records x labels), one sum of the loss.
    const size_t mine = logits_all.size();
    std::vector<float> packed = logits_all;
    packed.insert(packed.end(), targets.begin(), targets.end());
    packed.insert(packed.end(), mask.begin(), mask.end());
    const std::vector<std::vector<float>> parts = o.collectives->all_gather(packed, "evaluation scores");
    logits_all.clear(), targets.clear(), mask.clear();
    for (const auto& part : parts) {
      const size_t n = part.size() / 3;
      MT_CHECK(part.size() == 3 * n, "evaluation part of " << part.size() << " values (this rank: " << 3 * mine << ")");
      logits_all.insert(logits_all.end(), part.begin(), part.begin() + static_cast<ptrdiff_t>(n));
      targets.insert(targets.end(), part.begin() + static_cast<ptrdiff_t>(n),
                     part.begin() + static_cast<ptrdiff_t>(2 * n));
      mask.insert(mask.end(), part.begin() + static_cast<ptrdiff_t>(2 * n), part.end());
    }
    std::vector<double> loss = {loss_sum, loss_count};
    o.collectives->sum(loss, "evaluation loss");
    loss_sum = loss[0];
    loss_count = loss[1];
  }
  const size_t L = o.labels.size(), N = L ? logits_all.size() / L : 0;
  // Back into the split's order, whatever the world size: every figure below (temperatures, ties
  // among equal scores, the groups) is then computed over the same sequence as in one process.
  {
    const std::vector<uint64_t> index = gathered_indices(data, o);
    MT_CHECK(index.size() == N, "gathered " << N << " records, the samplers name " << index.size());
    std::vector<size_t> perm(N);
    for (size_t k = 0; k < N; ++k) perm[k] = k;
    std::sort(perm.begin(), perm.end(), [&](size_t a, size_t b) { return index[a] < index[b]; });
    if (!std::is_sorted(index.begin(), index.end())) {
      permute_rows(logits_all, perm, L);
      permute_rows(targets, perm, L);
      permute_rows(mask, perm, L);
    }
    MT_CHECK(N == data.size(), "evaluated " << N << " of " << data.size() << " records");
  }
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
  const RecordGroups groups = record_groups(data, o);
  r.report = evaluate_scores(o.labels, o.problem, probs, binary, mask, r.thresholds,
                             loss_count > 0 ? loss_sum / loss_count : 0.0, &groups);
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
  // Over zero chosen tokens there is no score (it used to read loss 0, perplexity 1: perfect, and
  // became the best checkpoint): NaN, which track_best never picks and JSON writes as null.
  const double none = std::numeric_limits<double>::quiet_NaN();
  r.loss = sums[2] > 0 ? sums[0] / sums[2] : none;
  r.accuracy = sums[2] > 0 ? sums[1] / sums[2] : none;
  r.perplexity = std::exp(r.loss);
  return r;
}

}  // namespace modtrain
