// Metrics against golden values computed independently with scikit-learn (ties included),
// threshold tuning, masking of labels that are not annotated, multi_class accuracy / macro-F1.
#include <catch2/catch.hpp>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "modtrain/train/metrics.h"

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
