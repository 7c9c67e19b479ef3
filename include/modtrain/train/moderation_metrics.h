// What a moderation team must show besides ranking quality (README: moderation-grade evaluation), per label on
// binarised targets: unintended bias against identity subgroups, and calibration. Plain C++ (no torch).
//
// Bias (Borkan et al. 2019, the Jigsaw Unintended Bias challenge): for each subgroup (records that
// mention an identity), the subgroup AUC (within the subgroup), the BPSN AUC (background positives
// and subgroup negatives: low when the model flags benign mentions) and the BNSP AUC (background
// negatives and subgroup positives: low when it misses abuse aimed at the group); the combined
// score is 0.25 x the overall AUC + 0.25 x each power mean (p = -5) of the three per-subgroup lists.
// A subgroup enters the means only when it has at least min_examples records and all three AUCs
// are defined; the others are reported with the reason, never as NaN averaged into the rest.
//
// Calibration: the expected calibration error over 15 equal-width bins (a score on a bin edge
// belongs to the lower bin, as sklearn.calibration.calibration_curve assigns it), the Brier score,
// and temperature scaling (Guo et al. 2017) per label: the T > 0 that minimises the validation
// cross-entropy of sigmoid(logit / T).
#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

namespace modtrain {

// Scores and targets of one label over the evaluated records (annotated records only).
struct LabelScores {
  std::vector<float> scores;   // probabilities
  std::vector<uint8_t> truth;  // 0/1
};

inline constexpr double kBiasPowerMeanP = -5.0;

struct SubgroupAuc {
  std::string name;
  uint64_t size = 0, positives = 0;  // records that mention the subgroup, and positives among them
  double subgroup_auc = std::numeric_limits<double>::quiet_NaN();
  double bpsn_auc = std::numeric_limits<double>::quiet_NaN();
  double bnsp_auc = std::numeric_limits<double>::quiet_NaN();
  bool reported = false;  // in the power means
  std::string why;        // when not reported: "3 records (fewer than 10)", "no positives", ...
};

struct BiasReport {
  double overall_auc = std::numeric_limits<double>::quiet_NaN();
  double bias_score = std::numeric_limits<double>::quiet_NaN();  // NaN when no subgroup is reported
  double power_means[3] = {std::numeric_limits<double>::quiet_NaN(), std::numeric_limits<double>::quiet_NaN(),
                           std::numeric_limits<double>::quiet_NaN()};  // subgroup, BPSN, BNSP
  std::vector<SubgroupAuc> subgroups;
  size_t reported() const;
  double worst_subgroup_auc() const;  // the lowest of the reported subgroups' three AUCs (NaN: none)
};

// (mean of v^p)^(1/p); NaN for an empty list.
double power_mean(const std::vector<double>& v, double p);

// `s`: the label's scores and binarised targets; member[g][i] != 0 when record i mentions
// subgroup g (each member[g] as long as s.scores).
// min_each_class: a subgroup with fewer positives or fewer negatives is reported as too small too
// (an AUC over one or two positives says little; 1 = only subgroups of one class are left out).
BiasReport bias_metrics(const LabelScores& s, const std::vector<std::string>& names,
                        const std::vector<std::vector<uint8_t>>& member, uint64_t min_examples = 10,
                        uint64_t min_each_class = 1);

struct ReliabilityBin {
  double lower = 0, upper = 0;
  uint64_t count = 0;
  double mean_score = 0, positive_rate = 0;  // 0 for an empty bin
};

struct CalibrationReport {
  double ece = std::numeric_limits<double>::quiet_NaN();    // NaN without records
  double brier = std::numeric_limits<double>::quiet_NaN();  // mean (score - target)^2
  uint64_t records = 0;
  std::vector<ReliabilityBin> bins;  // all of them, empty ones included (the reliability diagram)
};
CalibrationReport calibration(const LabelScores& s, int bins = 15);

// The mean binary cross-entropy of sigmoid(logit / temperature) against targets in [0, 1].
double binary_nll(const std::vector<double>& logits, const std::vector<double>& targets, double temperature);

struct TemperatureFit {
  double temperature = 1.0;
  double nll_before = 0, nll_after = 0;  // at T = 1 and at the fitted T
  bool at_bound = false;                 // the optimum lies outside [0.01, 100] (e.g. separable data)
  // Why no temperature was fitted (temperature stays 1): one class only (no positives or no
  // negatives: the fit would run to a bound and make every score 0 or 1), or the optimum outside
  // [0.01, 100]. Empty when fitted.
  std::string skipped;
};
// Newton's method on 1/T, where the cross-entropy is convex; T in [0.01, 100]. T = 1 with a
// reason in `skipped` when there is nothing sound to fit (see TemperatureFit::skipped).
TemperatureFit fit_temperature(const std::vector<double>& logits, const std::vector<double>& targets);

}  // namespace modtrain
