// Exact classification metrics for moderation labels: per-label precision, recall and F1 at the
// label's threshold, ROC-AUC and average precision (PR-AUC) from sorted scores with ties handled
// as scikit-learn does, expected calibration error and Brier score, support; macro and micro
// averages; accuracy and macro-F1 for multi_class.
// Not-annotated entries are left out of their label's metrics. Plain C++ (no torch).
#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "modtrain/config/config.h"
#include "modtrain/train/moderation_metrics.h"

namespace modtrain {

// Label `label`'s scores and targets from row-major [N x num_labels] arrays, entries not annotated left out.
LabelScores label_scores(const std::vector<float>& probs, const std::vector<float>& targets,
                         const std::vector<float>& mask, size_t num_labels, size_t label);

double roc_auc(const LabelScores& s);            // NaN when only one class is present
double average_precision(const LabelScores& s);  // NaN when there are no positives

struct BinaryCounts {
  uint64_t tp = 0, fp = 0, fn = 0, tn = 0;
  double precision() const { return tp + fp ? static_cast<double>(tp) / static_cast<double>(tp + fp) : 0.0; }
  double recall() const { return tp + fn ? static_cast<double>(tp) / static_cast<double>(tp + fn) : 0.0; }
  double f1() const { return tp ? 2.0 * static_cast<double>(tp) / static_cast<double>(2 * tp + fp + fn) : 0.0; }
};
BinaryCounts count_at(const LabelScores& s, double threshold);  // positive when score >= threshold

// Chooses a label's threshold on validation scores (docs/recipes.md, "Thresholds"):
//   max_f1:         the cut with the best F1 (ties: the higher threshold, fewer flags);
//   precision_at:P: the lowest threshold whose precision reaches P (the most recall at that precision);
//   recall_at:R:    the highest threshold whose recall reaches R (the most precision at that recall);
//   fixed:T:        T.
// The guard: max_f1 and recall_at only consider cuts whose precision is at least min_precision.
// When no cut qualifies (precision_at or the guard) the label flags nothing: kNeverFlagThreshold.
// A tuned threshold lies halfway between the lowest flagged score and the next lower one (the
// flagged set is the one chosen, with a margin against rounding differences when serving).
double tune_threshold(const LabelScores& s, const ThresholdPolicy& policy, double min_precision = 0.0);

struct LabelReport {
  std::string name;
  double threshold = 0.5;
  double precision = 0, recall = 0, f1 = 0, roc_auc = 0, pr_auc = 0;
  double ece = 0, brier = 0;  // calibration of the scores (moderation_metrics.h: 15 bins); NaN without records
  // The reliability diagram: per bin (of 15, equal width) its records, mean score and positive rate.
  std::vector<uint64_t> bin_counts;
  std::vector<double> bin_scores, bin_positive_rates;
  uint64_t support = 0;  // positives among annotated records
  uint64_t annotated = 0;
  // eval.calibrate: the scores are sigmoid(logit / temperature); the cross-entropy on the (soft)
  // targets and the ECE before it was applied. temperature 1 and NaNs when not calibrated.
  double temperature = 1.0;
  bool calibrated = false, temperature_at_bound = false;
  std::string calibration_skipped;  // eval.calibrate fitted no temperature for this label: why (T stays 1)
  double nll_uncalibrated = std::numeric_limits<double>::quiet_NaN();
  double nll_calibrated = std::numeric_limits<double>::quiet_NaN();
  double ece_uncalibrated = std::numeric_limits<double>::quiet_NaN();
};

// The metric figures of the records that share one value of a slice field (eval.slice_by).
struct SliceRow {
  std::string value;  // "(none)": records without a value
  uint64_t records = 0;
  double macro_pr_auc = 0, macro_roc_auc = 0, macro_f1 = 0, macro_ece = 0;
  std::vector<double> pr_auc, roc_auc, f1;  // per label
  std::vector<uint64_t> support;            // per label
};
struct SliceTable {
  std::string field;
  std::vector<SliceRow> rows;  // most records first
};

// Per-record groups of the evaluated records, aligned with their rows in probs (docs/data-format.md: slice fields).
struct RecordGroups {
  std::vector<std::string> subgroups;                  // data.subgroups
  std::vector<uint8_t> mentions;                       // [N x subgroups] 0/1
  std::vector<std::string> slice_by;                   // eval.slice_by
  std::vector<std::vector<std::string>> slice_values;  // [field][N], "(none)" where absent
  uint64_t min_subgroup_records = 10;
  uint64_t min_subgroup_class = 5;  // positives and negatives a reported subgroup has at least
};

struct EvalReport {
  double loss = 0;
  uint64_t records = 0;
  std::vector<LabelReport> labels;
  double macro_precision = 0, macro_recall = 0, macro_f1 = 0, macro_roc_auc = 0,
         macro_pr_auc = 0;  // over labels with support
  double micro_precision = 0, micro_recall = 0, micro_f1 = 0;
  double macro_ece = 0, macro_brier = 0;  // over labels with annotated records
  double accuracy = 0;                    // multi_class only (argmax)
  // data.subgroups: per label (in label order) the subgroup / BPSN / BNSP AUCs and the bias score;
  // the lowest reported subgroup AUC of all labels (NaN: none reported).
  std::vector<std::string> subgroups;
  std::vector<BiasReport> bias;
  double worst_subgroup_auc = std::numeric_limits<double>::quiet_NaN();
  std::vector<SliceTable> slices;  // eval.slice_by
  std::string to_json() const;
  std::string to_table() const;
};

// Builds the report from per-record probabilities [N x L], labels and masks. multi_class uses
// the argmax for accuracy and macro-F1 and one-vs-rest scores for the AUCs.
EvalReport evaluate_scores(const std::vector<std::string>& label_names, Problem problem,
                           const std::vector<float>& probs, const std::vector<float>& targets,
                           const std::vector<float>& mask, const std::vector<double>& thresholds, double loss,
                           const RecordGroups* groups = nullptr);

}  // namespace modtrain
