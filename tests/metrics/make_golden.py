#!/usr/bin/python3
"""Golden metric values computed independently with scikit-learn (Debian's python3-sklearn), for
tests/unit/test_metrics.cpp. Deterministic. Usage: /usr/bin/python3 make_golden.py OUT.json

Threshold rules checked here are modtrain's (sklearn has no threshold tuner): max_f1 picks the
distinct score with the highest F1, ties going to the higher threshold; precision_at:P picks the
lowest distinct score whose precision (predicting score >= t) reaches P."""
import json, sys
import numpy as np
from sklearn.metrics import roc_auc_score, average_precision_score, precision_score, recall_score, f1_score

rng = np.random.default_rng(20261128)
cases = []

def add(name, scores, truth):
    scores = np.asarray(scores, dtype=np.float32)
    truth = np.asarray(truth, dtype=np.int64)
    c = {"name": name, "scores": [float(s) for s in scores], "truth": [int(t) for t in truth]}
    both = truth.min() != truth.max()
    c["roc_auc"] = float(roc_auc_score(truth, scores)) if both else None
    c["average_precision"] = float(average_precision_score(truth, scores)) if truth.sum() > 0 else None
    pred = (scores >= np.float32(0.5)).astype(int)
    c["at_0_5"] = {"precision": float(precision_score(truth, pred, zero_division=0)),
                   "recall": float(recall_score(truth, pred, zero_division=0)),
                   "f1": float(f1_score(truth, pred, zero_division=0))}
    if truth.sum() > 0:
        best_f1, best_t = -1.0, 0.5
        for t in sorted(set(scores.tolist()), reverse=True):
            f = f1_score(truth, (scores >= t).astype(int), zero_division=0)
            if f > best_f1 + 1e-12:
                best_f1, best_t = f, t
        c["max_f1_threshold"] = float(best_t)
        c["max_f1"] = float(best_f1)
        for target in (0.5, 0.8):
            chosen = None
            for t in sorted(set(scores.tolist()), reverse=True):
                if precision_score(truth, (scores >= t).astype(int), zero_division=0) >= target:
                    chosen = t
            c[f"precision_at_{target}"] = float(chosen) if chosen is not None else None
    cases.append(c)

n = 300
truth = (rng.random(n) < 0.2).astype(int)
add("noisy_ties", np.round(np.clip(truth * 0.3 + rng.random(n) * 0.7, 0, 1), 1), truth)
truth = (rng.random(500) < 0.05).astype(int)
add("rare_positives", np.clip(truth * 0.25 + rng.random(500) * 0.75, 0, 1), truth)
add("all_tied", [0.5] * 10, [1, 0, 0, 1, 0, 0, 0, 1, 0, 0])
add("perfect", [0.9, 0.8, 0.7, 0.2, 0.1], [1, 1, 1, 0, 0])
add("reversed", [0.9, 0.8, 0.7, 0.2, 0.1], [0, 0, 0, 1, 1])
add("hand", [0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])
add("one_class", [0.1, 0.7, 0.3], [0, 0, 0])

# A multi-label report with some entries not annotated: macro = mean over labels with positives.
L, N = 3, 120
scores = rng.random((N, L)).astype(np.float32)
targets = (rng.random((N, L)) < np.array([0.2, 0.1, 0.3])).astype(np.float32)
scores = np.clip(scores * 0.8 + targets * 0.3, 0, 1).astype(np.float32)
mask = (rng.random((N, L)) > 0.15).astype(np.float32)
per = []
for l in range(L):
    keep = mask[:, l] > 0
    s, t = scores[keep, l], targets[keep, l].astype(int)
    pred = (s >= np.float32(0.5)).astype(int)
    per.append({"roc_auc": float(roc_auc_score(t, s)), "pr_auc": float(average_precision_score(t, s)),
                "f1": float(f1_score(t, pred, zero_division=0)), "support": int(t.sum()), "annotated": int(keep.sum())})
tp = fp = fn = 0
for l in range(L):
    keep = mask[:, l] > 0
    s, t = scores[keep, l], targets[keep, l].astype(int)
    p = s >= np.float32(0.5)
    tp += int((p & (t == 1)).sum()); fp += int((p & (t == 0)).sum()); fn += int((~p & (t == 1)).sum())
report = {"scores": scores.flatten().tolist(), "targets": targets.flatten().tolist(), "mask": mask.flatten().tolist(),
          "labels": per, "macro_roc_auc": float(np.mean([p["roc_auc"] for p in per])),
          "macro_pr_auc": float(np.mean([p["pr_auc"] for p in per])), "macro_f1": float(np.mean([p["f1"] for p in per])),
          "micro_f1": 2 * tp / (2 * tp + fp + fn)}

# multi_class: accuracy and macro F1 of the argmax
K, M = 4, 80
logits = rng.normal(size=(M, K)).astype(np.float32)
y = rng.integers(0, K, size=M)
logits[np.arange(M), y] += 1.0
probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
onehot = np.eye(K, dtype=np.float32)[y]
pred = probs.argmax(1)
multiclass = {"probs": probs.astype(np.float32).flatten().tolist(), "targets": onehot.flatten().tolist(),
              "accuracy": float((pred == y).mean()), "macro_f1": float(f1_score(y, pred, average="macro")),
              "micro_f1": float(f1_score(y, pred, average="micro"))}

json.dump({"binary": cases, "report": report, "multiclass": multiclass}, open(sys.argv[1], "w"), indent=1)
print(len(cases), "binary cases")
