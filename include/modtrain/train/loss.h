// Losses for moderation labels: multi_label BCE-with-logits masked by label_mask (labels that
// are not annotated contribute nothing) with optional per-label pos_weight; multi_class
// cross-entropy with optional label smoothing.
#pragma once

#include <torch/torch.h>

#include <vector>

#include "modtrain/config/config.h"

namespace modtrain {

struct LossOptions {
  Problem problem = Problem::kMultiLabel;
  torch::Tensor pos_weight;      // [L] or undefined (multi_label)
  double label_smoothing = 0.0;  // multi_class
};

// logits, labels, label_mask [B, L] -> the training objective: multi_label, the masked sum over
// (record, label) entries divided by B x L (entries not annotated contribute 0); multi_class, the
// mean over records. The fixed denominator makes accumulation (2 x B/2) and data parallelism
// (W ranks x B) give exactly the gradient of one batch of the same records, whatever the masks.
torch::Tensor classification_loss(const torch::Tensor& logits, const torch::Tensor& labels,
                                  const torch::Tensor& label_mask, const LossOptions& options);

// The training objective's numerator: the loss summed over annotated entries (multi_label) or
// records (multi_class), on the device (no host read). The trainer divides it by the count of
// those over the whole step on all ranks (annotated_count, summed over ranks), so that W ranks
// with any share of the records each (token budgets) equal one rank with all of them.
torch::Tensor classification_loss_total(const torch::Tensor& logits, const torch::Tensor& labels,
                                        const torch::Tensor& label_mask, const LossOptions& options);
// What classification_loss_total sums over, counted on the host from a batch's label mask [B, L].
double annotated_count(const torch::Tensor& label_mask, Problem problem);

// For evaluation: the loss summed over a batch and the number of annotated entries (multi_label)
// or records (multi_class), so the reported loss is the mean over what was annotated.
std::pair<double, double> classification_loss_sum(const torch::Tensor& logits, const torch::Tensor& labels,
                                                  const torch::Tensor& label_mask, const LossOptions& options);

// train.objective mlm: cross-entropy of the chosen tokens' logits [M, V] (float32) against their
// original ids [M], summed (the trainer divides by the step's chosen tokens over all ranks, as
// for classification). M = 0 gives 0, with a gradient of zeros.
torch::Tensor mlm_loss_total(const torch::Tensor& logits, const torch::Tensor& targets);

// pos_weight = negatives / positives per label over annotated training records, capped (the
// `train.pos_weight: auto` rule).
std::vector<double> auto_pos_weight(const std::vector<uint64_t>& positives, const std::vector<uint64_t>& annotated,
                                    double cap);

}  // namespace modtrain
