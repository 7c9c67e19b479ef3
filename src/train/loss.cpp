#include "modtrain/train/loss.h"

#include <algorithm>

namespace modtrain {
namespace {
torch::Tensor per_entry(const torch::Tensor& logits, const torch::Tensor& labels, const torch::Tensor& mask,
                        const LossOptions& o, torch::Tensor& count) {
  const torch::Tensor x = logits.to(torch::kFloat32);
  if (o.problem == Problem::kMultiLabel) {
    // Numerically stable BCE with logits: pw*y*softplus(-x) + (1-y)*softplus(x)
    torch::Tensor pw = o.pos_weight.defined() ? o.pos_weight.to(x.device()) : torch::ones({x.size(1)}, x.options());
    torch::Tensor loss = pw * labels * torch::softplus(-x) + (1 - labels) * torch::softplus(x);
    count = mask.sum();
    return loss * mask;  // [B, L]
  }
  torch::Tensor target = labels.argmax(1);
  torch::Tensor logp = torch::log_softmax(x, 1);
  torch::Tensor nll = -logp.gather(1, target.unsqueeze(1)).squeeze(1);  // [B]
  torch::Tensor loss = o.label_smoothing > 0 ? (1 - o.label_smoothing) * nll - o.label_smoothing * logp.mean(1) : nll;
  count = torch::tensor(static_cast<double>(x.size(0)), x.options());
  return loss;
}
}  // namespace

torch::Tensor classification_loss(const torch::Tensor& logits, const torch::Tensor& labels, const torch::Tensor& mask,
                                  const LossOptions& o) {
  torch::Tensor count;
  torch::Tensor entries = per_entry(logits, labels, mask, o, count);
  return entries.sum() / static_cast<double>(entries.numel());
}

torch::Tensor classification_loss_total(const torch::Tensor& logits, const torch::Tensor& labels,
                                        const torch::Tensor& mask, const LossOptions& o) {
  torch::Tensor count;
  return per_entry(logits, labels, mask, o, count).sum();
}

double annotated_count(const torch::Tensor& label_mask, Problem problem) {
  if (problem == Problem::kMultiClass) return static_cast<double>(label_mask.size(0));
  return label_mask.to(torch::kCPU).sum().item<double>();
}

std::pair<double, double> classification_loss_sum(const torch::Tensor& logits, const torch::Tensor& labels,
                                                  const torch::Tensor& mask, const LossOptions& o) {
  torch::Tensor count;
  torch::Tensor total = per_entry(logits, labels, mask, o, count).sum();
  return {total.item<double>(), count.item<double>()};
}

std::vector<double> auto_pos_weight(const std::vector<uint64_t>& positives, const std::vector<uint64_t>& annotated,
                                    double cap) {
  std::vector<double> w(positives.size(), 1.0);
  for (size_t l = 0; l < w.size(); ++l) {
    double negatives = static_cast<double>(annotated[l] - positives[l]);
    if (positives[l] == 0 || negatives == 0) continue;  // one class only: nothing to rebalance (1)
    w[l] = std::min(negatives / static_cast<double>(positives[l]), cap);
  }
  return w;
}

torch::Tensor mlm_loss_total(const torch::Tensor& logits, const torch::Tensor& targets) {
  return torch::nn::functional::cross_entropy(logits.to(torch::kFloat32), targets,
                                              torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum));
}

}  // namespace modtrain
