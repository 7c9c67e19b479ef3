#include "modtrain/infer/predictor.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "modtrain/data/tweet_normalizer.h"
#include "modtrain/model/model.h"

namespace modtrain {

Predictor::Predictor(LoadedModel& model, int batch, Sink sink)
    : m_(model), batch_(static_cast<size_t>(std::max(1, batch))), sink_(std::move(sink)) {}

namespace {
std::vector<int32_t> model_inputs(const LoadedModel& m, std::string_view text, std::string& scratch) {
  if (m.meta.normalize_tweets) {
    normalize_tweet(text, scratch);
    text = scratch;
  }
  std::vector<int32_t> ids;
  m.tokenizer->encode(text, ids, static_cast<size_t>(m.meta.max_len));
  return ids;
}
}  // namespace

std::vector<int32_t> encode_for_model(const LoadedModel& model, std::string_view text) {
  std::string scratch;
  return model_inputs(model, text, scratch);
}

std::vector<float> logits_of_encoded(const LoadedModel& m, const std::vector<const std::vector<int32_t>*>& records) {
  const int64_t b = static_cast<int64_t>(records.size());
  if (b == 0) return {};
  int64_t t = 1;
  for (const auto* r : records) t = std::max<int64_t>(t, static_cast<int64_t>(r->size()));
  const int64_t pad = m.tokenizer->special_ids().pad;
  torch::Tensor ids = torch::full({b, t}, pad, torch::kInt64);
  torch::Tensor mask = torch::zeros({b, t}, torch::kInt64);
  int64_t* id = ids.data_ptr<int64_t>();
  int64_t* keep = mask.data_ptr<int64_t>();
  for (int64_t i = 0; i < b; ++i) {
    const std::vector<int32_t>& v = *records[static_cast<size_t>(i)];
    for (size_t k = 0; k < v.size(); ++k)
      id[i * t + static_cast<int64_t>(k)] = v[k], keep[i * t + static_cast<int64_t>(k)] = 1;
  }
  c10::InferenceMode inference;  // no autograd records, no version counters: less per-op work than NoGradGuard
  torch::Tensor logits =
      m.model->logits(ids, mask, /*unpad=*/true, m.device).to(torch::kCPU, torch::kFloat32).contiguous();
  return std::vector<float>(logits.data_ptr<float>(), logits.data_ptr<float>() + logits.numel());
}

std::vector<float> scores_from_logits(const ModelMeta& meta, const std::vector<float>& logits, size_t n) {
  if (n == 0) return {};
  std::vector<float> copy = logits;  // from_blob does not own; probabilities() does not write it
  torch::Tensor x = torch::from_blob(copy.data(), {static_cast<int64_t>(n), static_cast<int64_t>(logits.size() / n)},
                                     torch::kFloat32);
  torch::Tensor p = probabilities(x, meta.problem, meta.temperatures).contiguous();
  return std::vector<float>(p.data_ptr<float>(), p.data_ptr<float>() + p.numel());
}

std::vector<size_t> flagged_labels(const ModelMeta& meta, const std::vector<float>& scores, bool* finite) {
  std::vector<size_t> flagged;
  *finite = std::all_of(scores.begin(), scores.end(), [](float v) { return std::isfinite(v); });
  if (!*finite) return flagged;
  if (meta.problem == Problem::kMultiClass) {
    flagged.push_back(static_cast<size_t>(std::max_element(scores.begin(), scores.end()) - scores.begin()));
  } else {
    for (size_t l = 0; l < scores.size(); ++l)
      if (scores[l] >= meta.thresholds[l]) flagged.push_back(l);
  }
  return flagged;
}

std::vector<int32_t> Predictor::encode(std::string_view text) const { return encode_for_model(m_, text); }

void Predictor::add(std::string id, uint64_t line, std::string_view text) {
  pending_.push_back({std::move(id), line, model_inputs(m_, text, normalized_)});
  if (pending_.size() >= batch_ * kWindowBatches) flush();
}

void Predictor::flush() {
  if (pending_.empty()) return;
  const size_t n = pending_.size(), L = m_.meta.labels.size();
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return pending_[a].ids.size() < pending_[b].ids.size(); });
  std::vector<float> scores(n * L);
  for (size_t start = 0; start < n; start += batch_) {
    const size_t end = std::min(n, start + batch_);
    std::vector<const std::vector<int32_t>*> records;
    for (size_t i = start; i < end; ++i) records.push_back(&pending_[order[i]].ids);
    const std::vector<float> probs = scores_from_logits(m_.meta, logits_of_encoded(m_, records), records.size());
    for (size_t i = 0; i < records.size(); ++i)
      std::copy(probs.begin() + static_cast<std::ptrdiff_t>(i * L),
                probs.begin() + static_cast<std::ptrdiff_t>((i + 1) * L),
                scores.begin() + static_cast<std::ptrdiff_t>(order[start + i] * L));
  }
  Prediction p;
  for (size_t i = 0; i < n; ++i) {
    p.id = std::move(pending_[i].id);
    p.line = pending_[i].line;
    p.scores.assign(scores.begin() + static_cast<std::ptrdiff_t>(i * L),
                    scores.begin() + static_cast<std::ptrdiff_t>((i + 1) * L));
    p.flagged = flagged_labels(m_.meta, p.scores, &p.finite);
    sink_(p);
  }
  pending_.clear();
}

}  // namespace modtrain
