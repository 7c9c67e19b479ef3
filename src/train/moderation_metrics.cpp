#include "modtrain/train/moderation_metrics.h"
#include "modtrain/train/metrics.h"

#include <algorithm>
#include <cmath>

namespace modtrain {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

LabelScores subset(const LabelScores& s, const std::vector<uint8_t>& keep) {
  LabelScores out;
  for (size_t i = 0; i < s.scores.size(); ++i)
    if (keep[i]) out.scores.push_back(s.scores[i]), out.truth.push_back(s.truth[i]);
  return out;
}

// log(1 + e^x) without overflow
double softplus(double x) { return x > 0 ? x + std::log1p(std::exp(-x)) : std::log1p(std::exp(x)); }
double sigmoid(double x) { return x >= 0 ? 1 / (1 + std::exp(-x)) : std::exp(x) / (1 + std::exp(x)); }

}  // namespace

size_t BiasReport::reported() const {
  return static_cast<size_t>(
      std::count_if(subgroups.begin(), subgroups.end(), [](const auto& g) { return g.reported; }));
}

double BiasReport::worst_subgroup_auc() const {
  double worst = kNaN;
  for (const auto& g : subgroups)
    if (g.reported)
      for (double v : {g.subgroup_auc, g.bpsn_auc, g.bnsp_auc}) worst = std::isnan(worst) ? v : std::min(worst, v);
  return worst;
}

double power_mean(const std::vector<double>& v, double p) {
  if (v.empty()) return kNaN;
  double sum = 0;
  for (double x : v) sum += std::pow(x, p);
  return std::pow(sum / static_cast<double>(v.size()), 1.0 / p);
}

BiasReport bias_metrics(const LabelScores& s, const std::vector<std::string>& names,
                        const std::vector<std::vector<uint8_t>>& member, uint64_t min_examples,
                        uint64_t min_each_class) {
  BiasReport r;
  r.overall_auc = roc_auc(s);
  std::vector<double> lists[3];
  const size_t n = s.scores.size();
  for (size_t g = 0; g < member.size(); ++g) {
    SubgroupAuc a;
    a.name = g < names.size() ? names[g] : "subgroup " + std::to_string(g);
    std::vector<uint8_t> in(n), bpsn(n), bnsp(n);
    for (size_t i = 0; i < n; ++i) {
      const bool m = member[g][i] != 0, positive = s.truth[i] != 0;
      in[i] = m;
      bpsn[i] = (!m && positive) || (m && !positive);  // background positives, subgroup negatives
      bnsp[i] = (!m && !positive) || (m && positive);  // background negatives, subgroup positives
      a.size += m;
      a.positives += m && positive;
    }
    a.subgroup_auc = roc_auc(subset(s, in));
    a.bpsn_auc = roc_auc(subset(s, bpsn));
    a.bnsp_auc = roc_auc(subset(s, bnsp));
    if (a.size < min_examples)
      a.why = std::to_string(a.size) + " records (fewer than " + std::to_string(min_examples) + ")";
    else if (a.positives == 0) a.why = "no positives among its records";
    else if (a.positives == a.size) a.why = "no negatives among its records";
    else if (a.positives < min_each_class || a.size - a.positives < min_each_class)
      a.why = std::to_string(a.positives) + " positives and " + std::to_string(a.size - a.positives) +
              " negatives (fewer than " + std::to_string(min_each_class) + " of one)";
    else if (std::isnan(a.bpsn_auc) || std::isnan(a.bnsp_auc))
      a.why = "the background has no positives or no negatives";
    a.reported = a.why.empty();
    if (a.reported) {
      lists[0].push_back(a.subgroup_auc);
      lists[1].push_back(a.bpsn_auc);
      lists[2].push_back(a.bnsp_auc);
    }
    r.subgroups.push_back(std::move(a));
  }
  if (!lists[0].empty()) {
    r.bias_score = 0.25 * r.overall_auc;
    for (int k = 0; k < 3; ++k) {
      r.power_means[k] = power_mean(lists[k], kBiasPowerMeanP);
      r.bias_score += 0.25 * r.power_means[k];
    }
  }
  return r;
}

CalibrationReport calibration(const LabelScores& s, int bins) {
  CalibrationReport r;
  r.records = s.scores.size();
  const double width = 1.0 / bins;  // edges k x (1 / bins), as numpy.linspace(0, 1, bins + 1)
  for (int b = 0; b < bins; ++b) r.bins.push_back({b * width, b + 1 == bins ? 1.0 : (b + 1) * width, 0, 0, 0});
  if (s.scores.empty()) return r;
  std::vector<double> score_sum(static_cast<size_t>(bins)), true_sum(static_cast<size_t>(bins));
  double brier = 0;
  for (size_t i = 0; i < s.scores.size(); ++i) {
    const double p = s.scores[i], y = s.truth[i] ? 1.0 : 0.0;
    int b = 0;  // the inner edges strictly below p: an edge value belongs to the lower bin
    while (b + 1 < bins && (b + 1) * width < p) ++b;
    ++r.bins[static_cast<size_t>(b)].count;
    score_sum[static_cast<size_t>(b)] += p;
    true_sum[static_cast<size_t>(b)] += y;
    brier += (p - y) * (p - y);
  }
  const double n = static_cast<double>(s.scores.size());
  r.brier = brier / n;
  r.ece = 0;
  for (size_t b = 0; b < r.bins.size(); ++b) {
    ReliabilityBin& bin = r.bins[b];
    if (bin.count == 0) continue;
    const double c = static_cast<double>(bin.count);
    bin.mean_score = score_sum[b] / c;
    bin.positive_rate = true_sum[b] / c;
    r.ece += c / n * std::abs(bin.positive_rate - bin.mean_score);
  }
  return r;
}

double binary_nll(const std::vector<double>& logits, const std::vector<double>& targets, double temperature) {
  if (logits.empty()) return 0;
  double sum = 0;
  for (size_t i = 0; i < logits.size(); ++i) {
    const double q = logits[i] / temperature;
    sum += softplus(q) - targets[i] * q;
  }
  return sum / static_cast<double>(logits.size());
}

TemperatureFit fit_temperature(const std::vector<double>& logits, const std::vector<double>& targets) {
  TemperatureFit fit;
  fit.nll_before = fit.nll_after = binary_nll(logits, targets, 1.0);
  double curvature_scale = 0, positives = 0;
  for (double z : logits) curvature_scale += z * z;
  for (double y : targets) positives += y;
  if (logits.empty()) fit.skipped = "no annotated records in data.valid";
  else if (positives == 0) fit.skipped = "no positive records in data.valid";
  else if (positives == static_cast<double>(targets.size())) fit.skipped = "no negative records in data.valid";
  else if (curvature_scale == 0) fit.skipped = "every logit is 0";
  if (!fit.skipped.empty()) return fit;
  // f(beta) = mean(softplus(beta z) - y beta z), beta = 1 / T: convex, f' = mean((sigmoid(beta z) - y) z),
  // f'' = mean(sigmoid (1 - sigmoid) z^2). Newton with halving steps, kept inside [1/100, 1/0.01].
  const double lo = 0.01, hi = 100.0, n = static_cast<double>(logits.size());
  auto f = [&](double beta) { return binary_nll(logits, targets, 1.0 / beta); };
  double beta = 1.0, value = f(beta);
  // Separable data has its optimum at T -> 0, where gradient and curvature vanish together and
  // Newton's steps stay about 1 / |logit| long: stop on the step, not on the gradient.
  for (int iteration = 0; iteration < 1000; ++iteration) {
    double g = 0, h = 0;
    for (size_t i = 0; i < logits.size(); ++i) {
      const double z = logits[i], p = sigmoid(beta * z);
      g += (p - targets[i]) * z;
      h += p * (1 - p) * z * z;
    }
    g /= n, h /= n;
    if (g == 0) break;
    double step = h > 0 ? -g / h : (g > 0 ? -beta / 2 : beta);
    double next = std::clamp(beta + step, lo, hi), next_value = f(next);
    for (int halve = 0; halve < 60 && next_value > value; ++halve) {
      step /= 2;
      next = std::clamp(beta + step, lo, hi);
      next_value = f(next);
    }
    if (next_value > value) break;
    const bool converged = std::abs(next - beta) <= 1e-13 * beta;
    beta = next, value = next_value;
    if (converged) break;
  }
  fit.at_bound = beta <= lo * (1 + 1e-9) || beta >= hi * (1 - 1e-9);
  if (fit.at_bound) {  // a clamped T is no estimate: 0.01 turns every positive logit into a score of ~1
    fit.skipped =
        std::string("the best temperature lies outside [0.01, 100] (") +
        (beta >= hi * (1 - 1e-9) ? "the validation scores separate the classes" : "the logits carry no signal") + ")";
    return fit;
  }
  fit.temperature = 1.0 / beta;
  fit.nll_after = value;
  return fit;
}

}  // namespace modtrain
