// Metrics against golden values computed independently with scikit-learn (ties included),
// threshold tuning, masking of labels that are not annotated, multi_class accuracy / macro-F1.
#include <catch2/catch.hpp>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "modtrain/train/metrics.h"
#include "modtrain/train/moderation_metrics.h"

using namespace modtrain;
using Catch::Detail::Approx;
using nlohmann::json;

namespace {
json golden() {
  std::ifstream in(MODTRAIN_TEST_DATA "/metrics/golden.json");
  return json::parse(in);
}
LabelScores scores_of(const json& c) {
  LabelScores s;
  for (double v : c["scores"]) s.scores.push_back(static_cast<float>(v));
  for (int t : c["truth"]) s.truth.push_back(static_cast<uint8_t>(t));
  return s;
}
}  // namespace

TEST_CASE("ROC-AUC, average precision and counts match scikit-learn", "[metrics]") {
  const json all = golden();  // not `: golden()["binary"]`: that would iterate a destroyed temporary
  REQUIRE(all["binary"].size() == 7);
  for (const auto& c : all["binary"]) {
    INFO(c["name"].get<std::string>());
    LabelScores s = scores_of(c);
    if (c["roc_auc"].is_null()) CHECK(std::isnan(roc_auc(s)));
    else CHECK(roc_auc(s) == Approx(c["roc_auc"].get<double>()).epsilon(1e-9));
    if (c["average_precision"].is_null()) CHECK(std::isnan(average_precision(s)));
    else CHECK(average_precision(s) == Approx(c["average_precision"].get<double>()).epsilon(1e-9));
    BinaryCounts k = count_at(s, 0.5);
    CHECK(k.precision() == Approx(c["at_0_5"]["precision"].get<double>()));
    CHECK(k.recall() == Approx(c["at_0_5"]["recall"].get<double>()));
    CHECK(k.f1() == Approx(c["at_0_5"]["f1"].get<double>()));
  }
}

// The golden thresholds are the lowest flagged score; ours must flag exactly the same records and
// sit strictly between that score and the next lower one (when there is one).
void check_cut(const LabelScores& s, double ours, double golden) {
  float next_lower = -1;
  for (float x : s.scores)
    if (x < golden) next_lower = std::max(next_lower, x);
  CHECK(ours <= golden);
  if (next_lower >= 0) CHECK(ours > next_lower);
  for (float x : s.scores) CHECK((x >= ours) == (x >= golden));
}

TEST_CASE("threshold tuning: max_f1 and precision_at", "[metrics]") {
  const json all = golden();  // not `: golden()["binary"]`: that would iterate a destroyed temporary
  REQUIRE(all["binary"].size() == 7);
  for (const auto& c : all["binary"]) {
    if (!c.contains("max_f1_threshold")) continue;
    INFO(c["name"].get<std::string>());
    LabelScores s = scores_of(c);
    double t = tune_threshold(s, {ThresholdPolicy::Kind::kMaxF1, 0});
    check_cut(s, t, c["max_f1_threshold"].get<double>());
    CHECK(count_at(s, t).f1() == Approx(c["max_f1"].get<double>()));
    for (double target : {0.5, 0.8}) {
      std::string key = target == 0.5 ? "precision_at_0.5" : "precision_at_0.8";
      double p = tune_threshold(s, {ThresholdPolicy::Kind::kPrecisionAt, target});
      if (c[key].is_null()) CHECK(p > 1.0);  // nothing reaches the target: flag nothing
      else check_cut(s, p, c[key].get<double>());
    }
  }
  // The margin: halfway between the lowest flagged score and the next one down.
  CHECK(tune_threshold(LabelScores{{0.9f, 0.8f, 0.6f, 0.1f}, {1, 1, 0, 0}}, {ThresholdPolicy::Kind::kMaxF1, 0}) ==
        Approx(0.7));
  CHECK(tune_threshold(LabelScores{{0.2f, 0.9f}, {0, 1}}, {ThresholdPolicy::Kind::kFixed, 0.3}) == 0.3);
}

TEST_CASE("threshold tuning: recall_at and the min_precision guard", "[metrics]") {
  // cuts (score: precision, recall): 0.9: 1, 1/3 | 0.8: 1/2, 1/3 | 0.7: 2/3, 2/3 | 0.6: 1/2, 2/3 |
  // 0.5: 2/5, 2/3 | 0.4: 1/2, 1
  const LabelScores s{{0.9f, 0.8f, 0.7f, 0.6f, 0.5f, 0.4f}, {1, 0, 1, 0, 0, 1}};
  using K = ThresholdPolicy::Kind;
  CHECK(tune_threshold(s, {K::kRecallAt, 0.6}) == Approx(0.65));  // the highest cut with recall >= 0.6
  CHECK(tune_threshold(s, {K::kRecallAt, 0.3}) == Approx(0.85));
  CHECK(tune_threshold(s, {K::kRecallAt, 1.0}) == Approx(0.4));
  CHECK(tune_threshold(s, {K::kRecallAt, 1.0}, 0.6) > 1.0);       // its precision 1/2 is below the guard: flag nothing
  CHECK(tune_threshold(s, {K::kMaxF1, 0}) == Approx(0.65));       // F1 2/3 at 0.7 (and at 0.4: the higher cut wins)
  CHECK(tune_threshold(s, {K::kMaxF1, 0}, 0.7) == Approx(0.85));  // only the 0.9 cut has precision >= 0.7
  CHECK(tune_threshold(s, {K::kMaxF1, 0}, 0.5) == Approx(0.65));
  // a weak model: the best F1 sits at precision 1/3; the guard makes the label flag nothing
  const LabelScores weak{{0.9f, 0.8f, 0.1f}, {0, 0, 1}};
  CHECK(tune_threshold(weak, {K::kMaxF1, 0}) == Approx(0.1f));
  CHECK(tune_threshold(weak, {K::kMaxF1, 0}, 0.3) == Approx(0.1f));
  CHECK(tune_threshold(weak, {K::kMaxF1, 0}, 0.5) == kNeverFlagThreshold);
  // fixed and precision_at ignore the guard (precision_at is a precision target itself)
  CHECK(tune_threshold(weak, {K::kFixed, 0.2}, 0.9) == 0.2);
  CHECK(tune_threshold(s, {K::kPrecisionAt, 0.6}, 0.99) == Approx(0.65));
}

TEST_CASE("multi-label report: masked entries ignored, macro and micro averages", "[metrics]") {
  json r = golden()["report"];
  std::vector<float> probs, targets, mask;
  for (double v : r["scores"]) probs.push_back(static_cast<float>(v));
  for (double v : r["targets"]) targets.push_back(static_cast<float>(v));
  for (double v : r["mask"]) mask.push_back(static_cast<float>(v));
  EvalReport report =
      evaluate_scores({"a", "b", "c"}, Problem::kMultiLabel, probs, targets, mask, {0.5, 0.5, 0.5}, 0.25);
  REQUIRE(report.labels.size() == 3);
  for (size_t l = 0; l < 3; ++l) {
    CHECK(report.labels[l].roc_auc == Approx(r["labels"][l]["roc_auc"].get<double>()));
    CHECK(report.labels[l].pr_auc == Approx(r["labels"][l]["pr_auc"].get<double>()));
    CHECK(report.labels[l].f1 == Approx(r["labels"][l]["f1"].get<double>()));
    CHECK(report.labels[l].support == r["labels"][l]["support"].get<uint64_t>());
    CHECK(report.labels[l].annotated == r["labels"][l]["annotated"].get<uint64_t>());
  }
  CHECK(report.macro_roc_auc == Approx(r["macro_roc_auc"].get<double>()));
  CHECK(report.macro_pr_auc == Approx(r["macro_pr_auc"].get<double>()));
  CHECK(report.macro_f1 == Approx(r["macro_f1"].get<double>()));
  CHECK(report.micro_f1 == Approx(r["micro_f1"].get<double>()));
  CHECK(report.loss == 0.25);
  // calibration per label on the annotated entries (the function itself is checked against sklearn below)
  double ece = 0, brier = 0;
  for (size_t l = 0; l < 3; ++l) {
    const CalibrationReport c = calibration(label_scores(probs, targets, mask, 3, l));
    CHECK(report.labels[l].ece == c.ece);
    CHECK(report.labels[l].brier == c.brier);
    REQUIRE(report.labels[l].bin_counts.size() == 15);
    for (size_t b = 0; b < 15; ++b) {
      CHECK(report.labels[l].bin_counts[b] == c.bins[b].count);
      CHECK(report.labels[l].bin_positive_rates[b] == c.bins[b].positive_rate);
    }
    ece += c.ece / 3, brier += c.brier / 3;
  }
  CHECK(report.macro_ece == Approx(ece));
  CHECK(report.macro_brier == Approx(brier));
  const json j = json::parse(report.to_json());
  CHECK(j["labels"]["a"]["ece"].get<double>() == report.labels[0].ece);
  CHECK(j["macro"]["brier"].get<double>() == report.macro_brier);
  CHECK(j["labels"]["b"]["reliability"]["counts"].size() == 15);
  CHECK_THAT(report.to_table(), Catch::Contains("calibration: macro ECE"));
  CHECK(json::parse(report.to_json())["macro"]["roc_auc"].get<double>() == Approx(r["macro_roc_auc"].get<double>()));
}

TEST_CASE("multi-class report: argmax accuracy and macro F1", "[metrics]") {
  json m = golden()["multiclass"];
  std::vector<float> probs, targets, mask;
  for (double v : m["probs"]) probs.push_back(static_cast<float>(v));
  for (double v : m["targets"]) targets.push_back(static_cast<float>(v));
  mask.assign(targets.size(), 1.0f);
  EvalReport report = evaluate_scores({"a", "b", "c", "d"}, Problem::kMultiClass, probs, targets, mask, {}, 0);
  CHECK(report.accuracy == Approx(m["accuracy"].get<double>()));
  CHECK(report.macro_f1 == Approx(m["macro_f1"].get<double>()));
  CHECK(report.micro_f1 == Approx(m["micro_f1"].get<double>()));
}

// ---- moderation metrics: bias against identity subgroups, calibration ----------------
namespace {
json moderation_golden() {
  std::ifstream in(MODTRAIN_TEST_DATA "/metrics/moderation_golden.json");
  return json::parse(in);
}
// A bias case of the golden: the scores, the targets binarised at 0.5, the subgroups' members.
struct BiasCase {
  LabelScores s;
  std::vector<std::vector<uint8_t>> member;
  explicit BiasCase(const json& c) {
    for (double v : c["scores"]) s.scores.push_back(static_cast<float>(v));
    for (double t : c["targets"]) s.truth.push_back(t >= 0.5 ? 1 : 0);  // soft targets binarised at 0.5
    for (const auto& m : c["members"]) member.push_back(m.get<std::vector<uint8_t>>());
  }
};
void check_auc(double ours, const json& want) {
  if (want.is_null()) CHECK(std::isnan(ours));
  else CHECK(ours == Approx(want.get<double>()).epsilon(1e-9));
}
}  // namespace

TEST_CASE("subgroup, BPSN and BNSP AUCs and the combined bias score match scikit-learn", "[metrics][bias]") {
  const json all = moderation_golden();
  REQUIRE(all["bias"].size() == 4);
  for (const auto& c : all["bias"]) {
    INFO(c["name"].get<std::string>());
    const BiasCase b(c);
    std::vector<std::string> names;
    while (names.size() < b.member.size()) names.push_back("g" + std::to_string(names.size()));
    const BiasReport r = bias_metrics(b.s, names, b.member, c["min_examples"].get<uint64_t>());
    check_auc(r.overall_auc, c["overall_auc"]);
    REQUIRE(r.subgroups.size() == c["subgroups"].size());
    for (size_t g = 0; g < r.subgroups.size(); ++g) {
      INFO("subgroup " << g);
      const json& want = c["subgroups"][g];
      const SubgroupAuc& got = r.subgroups[g];
      CHECK(got.name == names[g]);
      CHECK(got.size == want["size"].get<uint64_t>());
      CHECK(got.positives == want["positives"].get<uint64_t>());
      check_auc(got.subgroup_auc, want["subgroup_auc"]);
      check_auc(got.bpsn_auc, want["bpsn_auc"]);
      check_auc(got.bnsp_auc, want["bnsp_auc"]);
      CHECK(got.reported == want["reported"].get<bool>());
      CHECK(got.reported == got.why.empty());  // a subgroup left out says why
    }
    for (int k = 0; k < 3; ++k) check_auc(r.power_means[k], c["power_means"][static_cast<size_t>(k)]);
    check_auc(r.bias_score, c["bias_score"]);
    CHECK_FALSE(std::isnan(r.bias_score));  // small or empty subgroups never poison the score
  }
  // the reasons, and the worst reported AUC (the nightly's floor)
  const BiasCase tiny(all["bias"][1]);
  const BiasReport r = bias_metrics(tiny.s, {"a", "b", "c"}, tiny.member, 10);
  CHECK(r.subgroups[1].why == "2 records (fewer than 10)");
  CHECK(r.subgroups[2].why == "0 records (fewer than 10)");
  CHECK(r.reported() == 1);
  CHECK(r.worst_subgroup_auc() ==
        std::min({r.subgroups[0].subgroup_auc, r.subgroups[0].bpsn_auc, r.subgroups[0].bnsp_auc}));
  const BiasCase none(all["bias"][3]);
  CHECK(bias_metrics(none.s, {"a", "b"}, none.member, 10).subgroups[0].why == "no positives among its records");
  CHECK(std::isnan(bias_metrics(none.s, {"a"}, {none.member[0]}, 10).bias_score));  // none reported: NaN, said so
  CHECK(power_mean({0.5, 0.5}, -5) == Approx(0.5));
  CHECK(power_mean({0.9, 0.1}, -5) < 0.2);  // p = -5 leans on the worst subgroup
}

TEST_CASE("expected calibration error (15 bins), Brier score and temperature scaling match scikit-learn and SciPy",
          "[metrics][calibration]") {
  const json all = moderation_golden();
  REQUIRE(all["calibration"].size() == 3);
  for (const auto& c : all["calibration"]) {
    INFO(c["name"].get<std::string>());
    LabelScores s;
    for (double v : c["probs"]) s.scores.push_back(static_cast<float>(v));
    for (double t : c["targets"]) s.truth.push_back(t >= 0.5 ? 1 : 0);
    const CalibrationReport r = calibration(s, c["bins"].get<int>());
    CHECK(r.ece == Approx(c["ece"].get<double>()).epsilon(1e-9));
    CHECK(r.brier == Approx(c["brier"].get<double>()).epsilon(1e-9));
    REQUIRE(r.bins.size() == 15);
    std::vector<uint64_t> counts;
    uint64_t total = 0;
    for (const auto& b : r.bins) {
      if (b.count) counts.push_back(b.count);
      total += b.count;
    }
    CHECK(counts == c["bin_counts"].get<std::vector<uint64_t>>());
    CHECK(total == r.records);
    const auto logits = c["logits"].get<std::vector<double>>(), targets = c["targets"].get<std::vector<double>>();
    CHECK(binary_nll(logits, targets, 1.0) == Approx(c["nll_before"].get<double>()).epsilon(1e-12));
    const TemperatureFit fit = fit_temperature(logits, targets);
    CHECK(fit.temperature == Approx(c["temperature"].get<double>()).epsilon(1e-6));
    CHECK(fit.nll_after == Approx(c["nll_after"].get<double>()).epsilon(1e-9));
    CHECK(fit.nll_after <= fit.nll_before);
    CHECK_FALSE(fit.at_bound);
  }
  // the deliberately over-confident model: T well above 1 lowers the validation NLL and the ECE
  const json& over = all["calibration"][1];
  const auto logits = over["logits"].get<std::vector<double>>(), targets = over["targets"].get<std::vector<double>>();
  const TemperatureFit fit = fit_temperature(logits, targets);
  CHECK(fit.temperature > 2.5);
  CHECK(fit.nll_after < fit.nll_before - 0.1);
  LabelScores scaled;
  for (size_t i = 0; i < logits.size(); ++i) {
    scaled.scores.push_back(static_cast<float>(1 / (1 + std::exp(-logits[i] / fit.temperature))));
    scaled.truth.push_back(targets[i] >= 0.5 ? 1 : 0);
  }
  CHECK(calibration(scaled).ece < 0.5 * over["ece"].get<double>());
  // Nothing sound to fit: T = 1 with the reason. Separable data (the optimum is T -> 0, which
  // would make every positive logit score ~1), one class only, no records, all logits 0.
  const TemperatureFit separable = fit_temperature({-3, -1, 2, 4}, {0, 0, 1, 1});
  CHECK(separable.at_bound);
  CHECK(separable.temperature == 1.0);
  CHECK_THAT(separable.skipped, Catch::Contains("outside [0.01, 100] (the validation scores separate the classes)"));
  const TemperatureFit no_positives = fit_temperature({-3, 1, 2}, {0, 0, 0});
  CHECK(no_positives.temperature == 1.0);
  CHECK(no_positives.skipped == "no positive records in data.valid");
  const TemperatureFit all_positive = fit_temperature({-3, 1, 2}, {1, 1, 1});
  CHECK(all_positive.temperature == 1.0);
  CHECK(all_positive.skipped == "no negative records in data.valid");
  CHECK(fit_temperature({}, {}).temperature == 1.0);
  CHECK(fit_temperature({0, 0}, {0, 1}).temperature == 1.0);
  CHECK(fit.skipped.empty());
  CHECK(std::isnan(calibration(LabelScores{}).ece));
}
