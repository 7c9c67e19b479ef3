#!/usr/bin/python3
"""Golden values for the moderation evaluation metrics, computed independently with
scikit-learn 1.2 (Debian's python3-sklearn) and SciPy: per subgroup the subgroup, BPSN and BNSP
ROC-AUCs and the Jigsaw Unintended Bias combined score (Borkan et al. 2019: 0.25 x overall AUC +
0.25 x each power mean, p = -5, of the three per-subgroup AUC lists); expected calibration error
(15 equal-width bins as sklearn.calibration.calibration_curve assigns them) and the Brier score;
the temperature that minimises the binary cross-entropy of sigmoid(logit / T).

A subgroup is reported when it has at least MIN_EXAMPLES annotated records and all three AUCs are
defined (both classes present in each set); the others are listed with the reason, and the power
means run over the reported ones only. Cases: ties on a 0.1 grid, tiny subgroups, a subgroup without
positives, overlapping subgroups, soft targets binarised at 0.5.

Usage: make_moderation_golden.py > tests/data/metrics/moderation_golden.json
"""
import json
import math
import sys

import numpy as np
from scipy.optimize import minimize_scalar
from sklearn.calibration import calibration_curve
from sklearn.metrics import brier_score_loss, roc_auc_score

MIN_EXAMPLES = 10
P = -5.0


def auc(y, s):
    y = np.asarray(y)
    return None if len(y) == 0 or y.min() == y.max() else float(roc_auc_score(y, s))


def power_mean(values, p):
    v = np.asarray(values, dtype=np.float64)
    return float(np.power(np.mean(np.power(v, p)), 1.0 / p))


def subgroup_reports(y, s, groups, overall):
    reports, lists = [], [[], [], []]
    for member in groups:
        m = np.asarray(member).astype(bool)
        sub = auc(y[m], s[m])
        bpsn_set = (~m & (y == 1)) | (m & (y == 0))  # background positives, subgroup negatives
        bnsp_set = (~m & (y == 0)) | (m & (y == 1))  # background negatives, subgroup positives
        bpsn, bnsp = auc(y[bpsn_set], s[bpsn_set]), auc(y[bnsp_set], s[bnsp_set])
        size = int(m.sum())
        reported = size >= MIN_EXAMPLES and None not in (sub, bpsn, bnsp)
        if reported:
            for k, v in enumerate((sub, bpsn, bnsp)):
                lists[k].append(v)
        reports.append({"size": size, "positives": int(y[m].sum()), "subgroup_auc": sub, "bpsn_auc": bpsn,
                        "bnsp_auc": bnsp, "reported": reported})
    means = [power_mean(l, P) if l else None for l in lists]
    score = 0.25 * overall + sum(0.25 * m for m in means) if lists[0] else None
    return reports, means, score


def bias_case(name, rng, n, subgroup_rates, soft=False, grid=True):
    y_soft = rng.random(n) if soft else (rng.random(n) < 0.3).astype(np.float64)
    y = (y_soft >= 0.5).astype(np.int64)
    s = np.clip(0.35 * y + rng.random(n) * 0.65, 0, 1)
    if grid:
        s = np.round(s * 10) / 10  # ties
    s = s.astype(np.float32).astype(np.float64)  # what the C++ side holds
    groups = []
    for g, rate in enumerate(subgroup_rates):
        member = (rng.random(n) < rate).astype(np.int64)
        if g == 0:  # the first subgroup is scored higher on its negatives: a biased model
            s = np.where((member == 1) & (y == 0), np.minimum(s + 0.3, 1.0), s).astype(np.float32).astype(np.float64)
        groups.append(member)
    overall = auc(y, s)
    reports, means, score = subgroup_reports(y, s, groups, overall)
    return {"name": name, "scores": s.tolist(), "targets": y_soft.tolist(), "members": [g.tolist() for g in groups],
            "min_examples": MIN_EXAMPLES, "overall_auc": overall, "subgroups": reports, "bias_score": score,
            "power_means": means}


def calibration_case(name, rng, n, confidence):
    z = rng.normal(0, 1.5, n)
    y = (rng.random(n) < 1 / (1 + np.exp(-z))).astype(np.float64)  # calibrated at T = 1 ...
    logits = (z * confidence).astype(np.float32).astype(np.float64)  # ... over-confident by `confidence`
    p = (1 / (1 + np.exp(-logits))).astype(np.float32).astype(np.float64)
    prob_true, prob_pred = calibration_curve(y, p, n_bins=15, strategy="uniform")
    bins = np.linspace(0.0, 1.0, 16)
    counts = np.bincount(np.searchsorted(bins[1:-1], p), minlength=16)
    counts = counts[counts != 0]
    ece = float(np.sum(counts / n * np.abs(prob_true - prob_pred)))

    def nll(log_t):
        q = logits / math.exp(log_t)
        return float(np.mean(np.logaddexp(0, q) - y * q))

    fit = minimize_scalar(nll, bounds=(math.log(0.01), math.log(100)), method="bounded",
                          options={"xatol": 1e-10})
    return {"name": name, "logits": logits.tolist(), "probs": p.tolist(), "targets": y.tolist(),
            "ece": ece, "brier": float(brier_score_loss(y, p)), "bins": 15,
            "bin_counts": counts.tolist(), "temperature": math.exp(fit.x), "nll_before": nll(0.0), "nll_after": fit.fun}


def main():
    rng = np.random.default_rng(17)
    out = {"about": __doc__.split("\n\n")[0], "bias": [
        bias_case("three_groups_ties", rng, 400, [0.15, 0.08, 0.3]),
        bias_case("tiny_and_empty", rng, 300, [0.2, 0.02, 0.0]),  # a subgroup of a few, one of none
        bias_case("soft_targets", rng, 500, [0.25, 0.1], soft=True, grid=False),
        bias_case("no_positive_subgroup", rng, 200, [0.1, 0.3]),
    ], "calibration": [
        calibration_case("calibrated", rng, 2000, 1.0),
        calibration_case("over_confident", rng, 2000, 3.0),
        calibration_case("under_confident", rng, 1500, 0.4),
    ]}
    # the last bias case: subgroup 0 loses its positives (its subgroup AUC and BNSP are undefined)
    case = out["bias"][3]
    y = (np.array(case["targets"]) >= 0.5).astype(np.int64)
    case["members"][0] = (np.array(case["members"][0], dtype=bool) & (y == 0)).astype(np.int64).tolist()
    case["subgroups"], case["power_means"], case["bias_score"] = subgroup_reports(
        y, np.array(case["scores"]), case["members"], case["overall_auc"])
    json.dump(out, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
