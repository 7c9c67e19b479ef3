#include "modtrain/train/metrics.h"

#include "modtrain/train/moderation_metrics.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <nlohmann/json.hpp>
#include <numeric>

namespace modtrain {
namespace {

// Distinct-threshold curve points in descending score order: cumulative TP and FP at each
// distinct score (ties form one point, as sklearn's _binary_clf_curve).
struct Curve {
  std::vector<double> tps, fps, thresholds;
};

Curve curve(const LabelScores& s) {
  std::vector<size_t> order(s.scores.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return s.scores[a] > s.scores[b]; });
  Curve c;
  double tp = 0, fp = 0;
  for (size_t i = 0; i < order.size(); ++i) {
    if (s.truth[order[i]]) tp += 1;
    else fp += 1;
    if (i + 1 == order.size() || s.scores[order[i + 1]] != s.scores[order[i]]) {
      c.tps.push_back(tp);
      c.fps.push_back(fp);
      c.thresholds.push_back(s.scores[order[i]]);
    }
  }
  return c;
}

}  // namespace

LabelScores label_scores(const std::vector<float>& probs, const std::vector<float>& targets,
                         const std::vector<float>& mask, size_t num_labels, size_t label) {
  LabelScores s;
  for (size_t i = label; i < probs.size(); i += num_labels) {
    if (mask[i] == 0) continue;
    s.scores.push_back(probs[i]);
    s.truth.push_back(targets[i] > 0.5f);
  }
  return s;
}

double roc_auc(const LabelScores& s) {
  Curve c = curve(s);
  if (c.tps.empty()) return std::numeric_limits<double>::quiet_NaN();
  const double p = c.tps.back(), n = c.fps.back();
  if (p == 0 || n == 0) return std::numeric_limits<double>::quiet_NaN();
  double area = 0, prev_tpr = 0, prev_fpr = 0;  // trapezoids through (0,0) and every distinct threshold
  for (size_t i = 0; i < c.tps.size(); ++i) {
    double tpr = c.tps[i] / p, fpr = c.fps[i] / n;
    area += (fpr - prev_fpr) * (tpr + prev_tpr) / 2;
    prev_tpr = tpr;
    prev_fpr = fpr;
  }
  return area;
}

double average_precision(const LabelScores& s) {
  Curve c = curve(s);
  if (c.tps.empty() || c.tps.back() == 0) return std::numeric_limits<double>::quiet_NaN();
  const double p = c.tps.back();
  double ap = 0, prev_recall = 0;  // sum over thresholds of (R_n - R_{n-1}) * P_n, as sklearn
  for (size_t i = 0; i < c.tps.size(); ++i) {
    double recall = c.tps[i] / p, precision = c.tps[i] / (c.tps[i] + c.fps[i]);
    ap += (recall - prev_recall) * precision;
    prev_recall = recall;
  }
  return ap;
}

BinaryCounts count_at(const LabelScores& s, double threshold) {
  BinaryCounts c;
  for (size_t i = 0; i < s.scores.size(); ++i) {
    bool predicted = s.scores[i] >= threshold;
    if (s.truth[i]) predicted ? ++c.tp : ++c.fn;
    else predicted ? ++c.fp : ++c.tn;
  }
  return c;
}

double tune_threshold(const LabelScores& s, const ThresholdPolicy& policy, double min_precision) {
  if (policy.kind == ThresholdPolicy::Kind::kFixed) return policy.value;
  Curve c = curve(s);
  if (c.tps.empty() || c.tps.back() == 0) return 0.5;  // no positives: keep the neutral threshold
  const double p = c.tps.back();
  // The chosen cut flags the scores >= thresholds[i]. The threshold returned sits halfway down to
  // the next lower score: the same records are flagged here, and a record whose score comes out a
  // rounding error lower at serving time (another batch, another runtime) is not dropped.
  auto between = [&](size_t i) {
    const double t = i + 1 < c.thresholds.size() ? (c.thresholds[i] + c.thresholds[i + 1]) / 2 : c.thresholds[i];
    return std::max(t, std::numeric_limits<double>::min());  // > 0: a model directory's thresholds are in (0, 1]
  };
  auto precision = [&](size_t i) { return c.tps[i] / (c.tps[i] + c.fps[i]); };
  if (policy.kind == ThresholdPolicy::Kind::kRecallAt) {  // the first cut (highest threshold) reaching it
    for (size_t i = 0; i < c.tps.size(); ++i)
      if (c.tps[i] / p >= policy.value) return precision(i) >= min_precision ? between(i) : kNeverFlagThreshold;
    return kNeverFlagThreshold;  // unreachable: the last cut has recall 1
  }
  if (policy.kind == ThresholdPolicy::Kind::kMaxF1) {
    double best_f1 = -1;
    size_t best = 0;
    for (size_t i = 0; i < c.tps.size(); ++i) {
      if (precision(i) < min_precision) continue;
      double f1 = 2 * c.tps[i] / (c.tps[i] + c.fps[i] + p);
      if (f1 > best_f1) {  // strict: ties keep the higher threshold (fewer flags)
        best_f1 = f1;
        best = i;
      }
    }
    return best_f1 > 0 ? between(best) : kNeverFlagThreshold;
  }
  // precision_at: the lowest threshold (most recall) whose precision reaches the target
  bool found = false;
  size_t best = 0;
  for (size_t i = 0; i < c.tps.size(); ++i) {
    if (c.tps[i] / (c.tps[i] + c.fps[i]) >= policy.value) {
      best = i;
      found = true;
    }
  }
  return found ? between(best) : kNeverFlagThreshold;  // nothing reaches it: flag nothing
}

namespace {

// Bias per label and subgroup over the label's annotated records, and a metric row per slice value.
void add_groups(EvalReport& r, const std::vector<std::string>& names, Problem problem, const std::vector<float>& probs,
                const std::vector<float>& targets, const std::vector<float>& mask,
                const std::vector<double>& thresholds, const RecordGroups& g) {
  const size_t L = names.size(), N = L ? probs.size() / L : 0, G = g.subgroups.size();
  if (G > 0) {
    r.subgroups = g.subgroups;
    for (size_t l = 0; l < L; ++l) {
      LabelScores s;
      std::vector<std::vector<uint8_t>> member(G);
      for (size_t i = 0; i < N; ++i) {
        if (mask[i * L + l] == 0) continue;
        s.scores.push_back(probs[i * L + l]);
        s.truth.push_back(targets[i * L + l] > 0.5f);
        for (size_t k = 0; k < G; ++k) member[k].push_back(g.mentions[i * G + k]);
      }
      r.bias.push_back(bias_metrics(s, g.subgroups, member, g.min_subgroup_records, g.min_subgroup_class));
      const double worst = r.bias.back().worst_subgroup_auc();
      if (!std::isnan(worst) && !(worst >= r.worst_subgroup_auc)) r.worst_subgroup_auc = worst;
    }
  }
  for (size_t f = 0; f < g.slice_by.size(); ++f) {
    SliceTable table;
    table.field = g.slice_by[f];
    std::vector<std::string> values = g.slice_values[f];
    std::sort(values.begin(), values.end());
    values.erase(std::unique(values.begin(), values.end()), values.end());
    for (const std::string& value : values) {
      std::vector<float> p, t, m;
      for (size_t i = 0; i < N; ++i) {
        if (g.slice_values[f][i] != value) continue;
        p.insert(p.end(), probs.begin() + static_cast<std::ptrdiff_t>(i * L),
                 probs.begin() + static_cast<std::ptrdiff_t>((i + 1) * L));
        t.insert(t.end(), targets.begin() + static_cast<std::ptrdiff_t>(i * L),
                 targets.begin() + static_cast<std::ptrdiff_t>((i + 1) * L));
        m.insert(m.end(), mask.begin() + static_cast<std::ptrdiff_t>(i * L),
                 mask.begin() + static_cast<std::ptrdiff_t>((i + 1) * L));
      }
      const EvalReport sub = evaluate_scores(names, problem, p, t, m, thresholds, std::nan(""));
      SliceRow row;
      row.value = value;
      row.records = sub.records;
      row.macro_pr_auc = sub.macro_pr_auc;
      row.macro_roc_auc = sub.macro_roc_auc;
      row.macro_f1 = sub.macro_f1;
      row.macro_ece = sub.macro_ece;
      for (const LabelReport& lr : sub.labels) {
        row.pr_auc.push_back(lr.pr_auc);
        row.roc_auc.push_back(lr.roc_auc);
        row.f1.push_back(lr.f1);
        row.support.push_back(lr.support);
      }
      table.rows.push_back(std::move(row));
    }
    std::stable_sort(table.rows.begin(), table.rows.end(),
                     [](const SliceRow& a, const SliceRow& b) { return a.records > b.records; });
    r.slices.push_back(std::move(table));
  }
}

}  // namespace

EvalReport evaluate_scores(const std::vector<std::string>& names, Problem problem, const std::vector<float>& probs,
                           const std::vector<float>& targets, const std::vector<float>& mask,
                           const std::vector<double>& thresholds, double loss, const RecordGroups* groups) {
  const size_t L = names.size(), N = L ? probs.size() / L : 0;
  EvalReport r;
  r.loss = loss;
  r.records = N;
  BinaryCounts micro;
  size_t with_support = 0, with_auc = 0, with_ap = 0, with_records = 0;
  for (size_t l = 0; l < L; ++l) {
    LabelScores s = label_scores(probs, targets, mask, L, l);
    LabelReport lr;
    lr.name = names[l];
    lr.threshold = thresholds.empty() ? 0.5 : thresholds[l];
    lr.annotated = s.scores.size();
    BinaryCounts c = count_at(s, lr.threshold);
    lr.support = c.tp + c.fn;
    lr.precision = c.precision();
    lr.recall = c.recall();
    lr.f1 = c.f1();
    lr.roc_auc = roc_auc(s);
    lr.pr_auc = average_precision(s);
    const CalibrationReport calibrated = calibration(s);
    lr.ece = calibrated.ece;
    lr.brier = calibrated.brier;
    for (const ReliabilityBin& b : calibrated.bins) {
      lr.bin_counts.push_back(b.count);
      lr.bin_scores.push_back(b.mean_score);
      lr.bin_positive_rates.push_back(b.positive_rate);
    }
    if (!s.scores.empty()) ++with_records, r.macro_ece += lr.ece, r.macro_brier += lr.brier;
    if (problem == Problem::kMultiLabel) {
      micro.tp += c.tp;
      micro.fp += c.fp;
      micro.fn += c.fn;
    }
    if (lr.support > 0) {
      ++with_support;
      r.macro_precision += lr.precision;
      r.macro_recall += lr.recall;
      r.macro_f1 += lr.f1;
    }
    if (!std::isnan(lr.roc_auc)) ++with_auc, r.macro_roc_auc += lr.roc_auc;
    if (!std::isnan(lr.pr_auc)) ++with_ap, r.macro_pr_auc += lr.pr_auc;
    r.labels.push_back(lr);
  }
  auto mean = [](double sum, size_t n) {
    return n ? sum / static_cast<double>(n) : std::numeric_limits<double>::quiet_NaN();
  };
  r.macro_precision = mean(r.macro_precision, with_support);
  r.macro_recall = mean(r.macro_recall, with_support);
  r.macro_f1 = mean(r.macro_f1, with_support);
  r.macro_roc_auc = mean(r.macro_roc_auc, with_auc);
  r.macro_pr_auc = mean(r.macro_pr_auc, with_ap);
  r.macro_ece = mean(r.macro_ece, with_records);
  r.macro_brier = mean(r.macro_brier, with_records);
  if (problem == Problem::kMultiClass) {
    // argmax predictions: accuracy, and per-class precision/recall/F1 from the confusion counts
    std::vector<BinaryCounts> per(L);
    uint64_t correct = 0;
    for (size_t i = 0; i < N; ++i) {
      size_t predicted =
          static_cast<size_t>(std::max_element(probs.begin() + static_cast<std::ptrdiff_t>(i * L),
                                               probs.begin() + static_cast<std::ptrdiff_t>((i + 1) * L)) -
                              (probs.begin() + static_cast<std::ptrdiff_t>(i * L)));
      size_t truth = static_cast<size_t>(std::max_element(targets.begin() + static_cast<std::ptrdiff_t>(i * L),
                                                          targets.begin() + static_cast<std::ptrdiff_t>((i + 1) * L)) -
                                         (targets.begin() + static_cast<std::ptrdiff_t>(i * L)));
      correct += predicted == truth;
      for (size_t l = 0; l < L; ++l) {
        bool p = l == predicted, t = l == truth;
        if (p && t) ++per[l].tp;
        else if (p) ++per[l].fp;
        else if (t) ++per[l].fn;
        else ++per[l].tn;
      }
    }
    r.accuracy = N ? static_cast<double>(correct) / static_cast<double>(N) : 0.0;
    double f1 = 0, precision = 0, recall = 0;
    for (size_t l = 0; l < L; ++l) {
      r.labels[l].precision = per[l].precision();
      r.labels[l].recall = per[l].recall();
      r.labels[l].f1 = per[l].f1();
      f1 += per[l].f1();
      precision += per[l].precision();
      recall += per[l].recall();
      micro.tp += per[l].tp;
      micro.fp += per[l].fp;
      micro.fn += per[l].fn;
    }
    r.macro_f1 = mean(f1, L);
    r.macro_precision = mean(precision, L);
    r.macro_recall = mean(recall, L);
  }
  r.micro_precision = micro.precision();
  r.micro_recall = micro.recall();
  r.micro_f1 = micro.f1();
  if (groups) add_groups(r, names, problem, probs, targets, mask, thresholds, *groups);
  return r;
}

std::string EvalReport::to_json() const {
  auto num = [](double x) { return std::isnan(x) ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(x); };
  nlohmann::ordered_json labels_json = nlohmann::ordered_json::object();
  for (const auto& l : labels)
    labels_json[l.name] = {
        {"threshold", l.threshold},
        {"precision", num(l.precision)},
        {"recall", num(l.recall)},
        {"f1", num(l.f1)},
        {"roc_auc", num(l.roc_auc)},
        {"pr_auc", num(l.pr_auc)},
        {"ece", num(l.ece)},
        {"brier", num(l.brier)},
        {"support", l.support},
        {"annotated", l.annotated},
        {"reliability",
         {{"counts", l.bin_counts}, {"mean_score", l.bin_scores}, {"positive_rate", l.bin_positive_rates}}},
        {"temperature", l.temperature}};
  for (const auto& l : labels)
    if (l.calibrated)
      labels_json[l.name]["calibration"] = {{"temperature", l.temperature},
                                            {"at_bound", l.temperature_at_bound},
                                            {"nll_before", num(l.nll_uncalibrated)},
                                            {"nll_after", num(l.nll_calibrated)},
                                            {"ece_before", num(l.ece_uncalibrated)}};
  for (const auto& l : labels)
    if (l.calibrated && !l.calibration_skipped.empty())
      labels_json[l.name]["calibration"]["skipped"] = l.calibration_skipped;
  nlohmann::ordered_json j = {
      {"loss", num(loss)},
      {"records", records},
      {"labels", labels_json},
      {"macro",
       {{"precision", num(macro_precision)},
        {"recall", num(macro_recall)},
        {"f1", num(macro_f1)},
        {"roc_auc", num(macro_roc_auc)},
        {"pr_auc", num(macro_pr_auc)},
        {"ece", num(macro_ece)},
        {"brier", num(macro_brier)}}},
      {"micro", {{"precision", num(micro_precision)}, {"recall", num(micro_recall)}, {"f1", num(micro_f1)}}},
      {"accuracy", num(accuracy)}};
  if (!subgroups.empty()) {
    nlohmann::ordered_json per_label = nlohmann::ordered_json::object();
    for (size_t l = 0; l < bias.size() && l < labels.size(); ++l) {
      const BiasReport& b = bias[l];
      nlohmann::ordered_json groups = nlohmann::ordered_json::object();
      for (const SubgroupAuc& g : b.subgroups)
        groups[g.name] = {{"records", g.size},
                          {"positives", g.positives},
                          {"subgroup_auc", num(g.subgroup_auc)},
                          {"bpsn_auc", num(g.bpsn_auc)},
                          {"bnsp_auc", num(g.bnsp_auc)},
                          {"reported", g.reported},
                          {"why", g.why}};
      per_label[labels[l].name] = {{"overall_auc", num(b.overall_auc)},
                                   {"bias_score", num(b.bias_score)},
                                   {"power_means",
                                    {{"subgroup_auc", num(b.power_means[0])},
                                     {"bpsn_auc", num(b.power_means[1])},
                                     {"bnsp_auc", num(b.power_means[2])}}},
                                   {"subgroups", groups}};
    }
    j["bias"] = {{"subgroups", subgroups},
                 {"power", kBiasPowerMeanP},
                 {"worst_subgroup_auc", num(worst_subgroup_auc)},
                 {"labels", per_label}};
  }
  if (!slices.empty()) {
    nlohmann::ordered_json tables = nlohmann::ordered_json::object();
    for (const SliceTable& t : slices) {
      nlohmann::ordered_json rows = nlohmann::ordered_json::array();
      for (const SliceRow& row : t.rows) {
        nlohmann::ordered_json per = nlohmann::ordered_json::object();
        for (size_t l = 0; l < row.pr_auc.size() && l < labels.size(); ++l)
          per[labels[l].name] = {{"pr_auc", num(row.pr_auc[l])},
                                 {"roc_auc", num(row.roc_auc[l])},
                                 {"f1", num(row.f1[l])},
                                 {"support", row.support[l]}};
        rows.push_back({{"value", row.value},
                        {"records", row.records},
                        {"macro",
                         {{"pr_auc", num(row.macro_pr_auc)},
                          {"roc_auc", num(row.macro_roc_auc)},
                          {"f1", num(row.macro_f1)},
                          {"ece", num(row.macro_ece)}}},
                        {"labels", per}});
      }
      tables[t.field] = rows;
    }
    j["slices"] = tables;
  }
  return j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

std::string EvalReport::to_table() const {
  std::string out;
  char line[256];
  std::snprintf(line, sizeof line, "%-16s %9s %9s %9s %9s %9s %9s %8s\n", "label", "threshold", "precision", "recall",
                "f1", "roc_auc", "pr_auc", "support");
  out += line;
  auto row = [&](const char* name, double t, double p, double r, double f, double a, double ap, uint64_t s,
                 bool show_support) {
    std::snprintf(line, sizeof line, "%-16s %9.3f %9.3f %9.3f %9.3f %9.3f %9.3f %8s\n", name, t, p, r, f, a, ap,
                  show_support ? std::to_string(s).c_str() : "");
    out += line;
  };
  for (const auto& l : labels)
    row(l.name.c_str(), l.threshold, l.precision, l.recall, l.f1, l.roc_auc, l.pr_auc, l.support, true);
  row("macro", std::nan(""), macro_precision, macro_recall, macro_f1, macro_roc_auc, macro_pr_auc, 0, false);
  row("micro", std::nan(""), micro_precision, micro_recall, micro_f1, std::nan(""), std::nan(""), 0, false);
  std::snprintf(line, sizeof line, "calibration: macro ECE %.4f (15 bins), macro Brier %.4f (per label: --json)\n",
                macro_ece, macro_brier);
  out += line;
  std::string temps;
  for (const auto& l : labels)
    if (l.calibrated) {
      if (!l.calibration_skipped.empty())
        std::snprintf(line, sizeof line, "%s%s not fitted (T=1: %s)", temps.empty() ? "" : ", ", l.name.c_str(),
                      l.calibration_skipped.c_str());
      else
        std::snprintf(line, sizeof line, "%s%s T=%.3g (ECE %.4f -> %.4f)", temps.empty() ? "" : ", ", l.name.c_str(),
                      l.temperature, l.ece_uncalibrated, l.ece);
      temps += line;
    }
  if (!temps.empty()) out += "temperature scaling: " + temps + "\n";
  for (size_t l = 0; l < bias.size() && l < labels.size(); ++l) {
    const BiasReport& b = bias[l];
    std::snprintf(line, sizeof line,
                  "bias %s: score %.3f (overall AUC %.3f; power means p=-5: subgroup %.3f, BPSN %.3f, BNSP %.3f)\n",
                  labels[l].name.c_str(), b.bias_score, b.overall_auc, b.power_means[0], b.power_means[1],
                  b.power_means[2]);
    out += line;
    for (const SubgroupAuc& g : b.subgroups) {
      if (g.reported)
        std::snprintf(line, sizeof line, "  %-16s %7llu records %6llu pos   subgroup %.3f  BPSN %.3f  BNSP %.3f\n",
                      g.name.c_str(), static_cast<unsigned long long>(g.size),
                      static_cast<unsigned long long>(g.positives), g.subgroup_auc, g.bpsn_auc, g.bnsp_auc);
      else std::snprintf(line, sizeof line, "  %-16s not reported: %s\n", g.name.c_str(), g.why.c_str());
      out += line;
    }
  }
  if (!subgroups.empty()) {
    std::snprintf(line, sizeof line, "worst subgroup AUC: %.3f\n", worst_subgroup_auc);
    out += line;
  }
  for (const SliceTable& t : slices) {
    std::snprintf(line, sizeof line, "slice %-10s %9s %9s %9s %9s %9s\n", t.field.c_str(), "records", "pr_auc",
                  "roc_auc", "f1", "ece");
    out += line;
    for (const SliceRow& row : t.rows) {
      std::snprintf(line, sizeof line, "  %-14.14s %9llu %9.3f %9.3f %9.3f %9.4f\n", row.value.c_str(),
                    static_cast<unsigned long long>(row.records), row.macro_pr_auc, row.macro_roc_auc, row.macro_f1,
                    row.macro_ece);
      out += line;
    }
  }
  std::snprintf(line, sizeof line, "loss %.4f over %llu records%s\n", loss, static_cast<unsigned long long>(records),
                accuracy > 0 ? (", accuracy " + std::to_string(accuracy)).c_str() : "");
  out += line;
  return out;
}

}  // namespace modtrain
