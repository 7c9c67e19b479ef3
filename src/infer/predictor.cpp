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

std::vector<int32_t> Predictor::encode(std::string_view text) const {
  std::string scratch;
  return model_inputs(m_, text, scratch);
}

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
  torch::NoGradGuard no_grad;
  const int64_t pad = m_.tokenizer->special_ids().pad;
  for (size_t start = 0; start < n; start += batch_) {
    const size_t end = std::min(n, start + batch_);
    const int64_t b = static_cast<int64_t>(end - start);
    const int64_t t = static_cast<int64_t>(pending_[order[end - 1]].ids.size());  // the longest (sorted)
    torch::Tensor ids = torch::full({b, t}, pad, torch::kInt64);
    torch::Tensor mask = torch::zeros({b, t}, torch::kInt64);
    int64_t* id = ids.data_ptr<int64_t>();
    int64_t* keep = mask.data_ptr<int64_t>();
    for (int64_t i = 0; i < b; ++i) {
      const auto& v = pending_[order[start + static_cast<size_t>(i)]].ids;
      for (size_t k = 0; k < v.size(); ++k)
        id[i * t + static_cast<int64_t>(k)] = v[k], keep[i * t + static_cast<int64_t>(k)] = 1;
    }
    torch::Tensor probs =
        probabilities(m_.model->logits(ids, mask, /*unpad=*/true, torch::kCPU), m_.meta.problem, m_.meta.temperatures)
            .contiguous();
    const float* row = probs.data_ptr<float>();
    for (int64_t i = 0; i < b; ++i)
      std::copy(row + i * static_cast<int64_t>(L), row + (i + 1) * static_cast<int64_t>(L),
                scores.begin() + static_cast<std::ptrdiff_t>(order[start + static_cast<size_t>(i)] * L));
  }
  Prediction p;
  for (size_t i = 0; i < n; ++i) {
    p.id = std::move(pending_[i].id);
    p.line = pending_[i].line;
    p.scores.assign(scores.begin() + static_cast<std::ptrdiff_t>(i * L),
                    scores.begin() + static_cast<std::ptrdiff_t>((i + 1) * L));
    p.flagged.clear();
    p.finite = std::all_of(p.scores.begin(), p.scores.end(), [](float v) { return std::isfinite(v); });
    if (p.finite) {
      if (m_.meta.problem == Problem::kMultiClass) {
        p.flagged.push_back(static_cast<size_t>(std::max_element(p.scores.begin(), p.scores.end()) - p.scores.begin()));
      } else {
        for (size_t l = 0; l < L; ++l)
          if (p.scores[l] >= m_.meta.thresholds[l]) p.flagged.push_back(l);
      }
    }
    sink_(p);
  }
  pending_.clear();
}

}  // namespace modtrain
