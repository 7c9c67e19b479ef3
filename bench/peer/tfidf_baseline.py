#!/usr/bin/env python3
"""The classical baseline a practitioner tries first: TF-IDF + one logistic regression per label.

It reads the same raw files as `modtrain data prepare` (JSONL with "text" and "labels" as a list,
an object of 0/1/shares/null, or CSV/TSV with a text column and one column per label), trains on
the train files, scores the validation files and writes JSON with the same macro PR-AUC
(average precision) and ROC-AUC that `modtrain eval` reports: a label's not-annotated records are
left out of its metrics, soft labels are binarised at --positive-at, labels without positives or
negatives among the annotated records are left out of the macro means (as modtrain's metrics.cpp).

  TF-IDF: word 1-2 grams, sublinear tf, min_df 2 (the issue's recipe; --ngram 3 for a stronger one)
  LR:     liblinear, C=4 (--C), one per label, fitted on the label's annotated training records

It also measures the split's noise: the standard deviation of the macro PR-AUC and ROC-AUC over
--bootstrap resamples of the validation records (the same resamples score every scorer passed
with --compare, so the nightly can ask whether modtrain is below the baseline by more than that).

Usage:
  tfidf_baseline.py --train 'data/train-*.jsonl' --valid 'data/valid-*.jsonl' [--labels a,b,...]
                    [--positive-at 0.5] [--out baseline.json]
Prints one summary line; --out gets the JSON (per label and macro figures, records, seconds).
"""
import argparse
import csv
import glob
import json
import math
import os
import sys
import time

DEFAULT_LABELS = "hate,harassment,threat,sexual,self_harm,spam,misinformation"


def fail(msg):
    print(f"tfidf_baseline: {msg}", file=sys.stderr)
    sys.exit(2)


def value_of(v, positive_at):
    """A label value as 1 / 0 / None (not annotated), soft shares binarised at positive_at."""
    if v is None or v == "" or v == -1 or v == "-1":
        return None
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, str):
        s = v.strip().lower()
        if s in ("true", "yes"):
            return 1
        if s in ("false", "no"):
            return 0
        try:
            v = float(s)
        except ValueError:
            return None
    return int(float(v) >= positive_at)


def read_records(pattern, labels, positive_at):
    files = sorted(glob.glob(pattern))
    if not files:
        fail(f"no file matches {pattern}; give the same globs as data.train / data.valid")
    texts, ys = [], []
    for path in files:
        ext = os.path.splitext(path)[1].lower()
        if ext in (".jsonl", ".ndjson", ".json"):
            with open(path, encoding="utf-8") as f:
                for n, line in enumerate(f, 1):
                    if not line.strip():
                        continue
                    try:
                        r = json.loads(line)
                    except json.JSONDecodeError as e:
                        fail(f"{path}:{n}: invalid JSON ({e.msg}); fix or remove the line")
                    got = r.get("labels")
                    if isinstance(got, list):
                        y = [int(l in got) for l in labels]
                    elif isinstance(got, dict):
                        y = [value_of(got.get(l), positive_at) for l in labels]
                    else:
                        fail(f"{path}:{n}: no \"labels\" list or object")
                    texts.append(r["text"])
                    ys.append(y)
        elif ext in (".csv", ".tsv", ".tab"):
            with open(path, encoding="utf-8", newline="") as f:
                reader = csv.DictReader(f, delimiter="," if ext == ".csv" else "\t")
                for row in reader:
                    texts.append(row["text"])
                    ys.append([value_of(row.get(l), positive_at) for l in labels])
        else:
            fail(f"{path}: unknown extension {ext}; use .jsonl, .csv or .tsv as data prepare does")
    return texts, ys


def label_metrics(scores, truth):
    """(average precision, ROC-AUC) as scikit-learn computes them, None without both classes."""
    from sklearn.metrics import average_precision_score, roc_auc_score
    if 0 < sum(truth) < len(truth):
        return float(average_precision_score(truth, scores)), float(roc_auc_score(truth, scores))
    return None, None


def macro(per_label):
    pr = [m["pr_auc"] for m in per_label if m["pr_auc"] is not None]
    roc = [m["roc_auc"] for m in per_label if m["roc_auc"] is not None]
    return (sum(pr) / len(pr) if pr else float("nan"), sum(roc) / len(roc) if roc else float("nan"))


def evaluate(scores, ys, labels, rows=None):
    """Per-label and macro figures over the records in rows (all by default)."""
    rows = range(len(ys)) if rows is None else rows
    per_label = []
    for l, name in enumerate(labels):
        s = [scores[i][l] for i in rows if ys[i][l] is not None]
        t = [ys[i][l] for i in rows if ys[i][l] is not None]
        pr, roc = label_metrics(s, t)
        per_label.append({"name": name, "pr_auc": pr, "roc_auc": roc, "support": int(sum(t)), "annotated": len(t)})
    return per_label, macro(per_label)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--train", required=True)
    p.add_argument("--valid", required=True)
    p.add_argument("--labels", default=DEFAULT_LABELS)
    p.add_argument("--positive-at", type=float, default=0.5)
    p.add_argument("--ngram", type=int, default=2)
    p.add_argument("--C", type=float, default=4.0)
    p.add_argument("--bootstrap", type=int, default=200)
    p.add_argument("--compare", action="append", default=[], metavar="NAME=SCORES.jsonl",
                   help="also score these per-record scores (JSONL, one {\"scores\": {label: p}} or "
                        "{\"probs\": [...]} per validation record, in file order) on the same resamples")
    p.add_argument("--out")
    a = p.parse_args()
    try:
        import numpy as np
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
    except ImportError:
        fail("needs scikit-learn and numpy: apt-get install python3-sklearn")
    labels = [l for l in a.labels.split(",") if l]
    start = time.time()
    train_x, train_y = read_records(a.train, labels, a.positive_at)
    valid_x, valid_y = read_records(a.valid, labels, a.positive_at)
    vec = TfidfVectorizer(ngram_range=(1, a.ngram), sublinear_tf=True, min_df=2, lowercase=True)
    xt = vec.fit_transform(train_x)
    xv = vec.transform(valid_x)
    scores = np.zeros((len(valid_x), len(labels)))
    for l in range(len(labels)):
        rows = [i for i, y in enumerate(train_y) if y[l] is not None]
        y = np.array([train_y[i][l] for i in rows])
        if y.min() == y.max():
            scores[:, l] = float(y[0])
            continue
        clf = LogisticRegression(C=a.C, solver="liblinear", max_iter=1000)
        clf.fit(xt[rows], y)
        scores[:, l] = clf.predict_proba(xv)[:, 1]
    scores = scores.tolist()
    per_label, (pr, roc) = evaluate(scores, valid_y, labels)

    # The split's noise: bootstrap resamples of the validation records (seeded: reproducible).
    others = {}
    for spec in a.compare:
        name, _, path = spec.partition("=")
        with open(path, encoding="utf-8") as f:
            rows = [json.loads(line) for line in f if line.strip()]
        if len(rows) != len(valid_x):
            fail(f"{path}: {len(rows)} score rows for {len(valid_x)} validation records")
        others[name] = [[r["scores"][l] for l in labels] if "scores" in r else r["probs"] for r in rows]
    rng = np.random.default_rng(20261206)
    boot = {"baseline": ([], [])}
    for name in others:
        boot[name] = ([], [])
    for _ in range(a.bootstrap):
        rows = rng.integers(0, len(valid_x), len(valid_x)).tolist()
        for name, s in [("baseline", scores)] + list(others.items()):
            _, (bp, br) = evaluate(s, valid_y, labels, rows)
            boot[name][0].append(bp)
            boot[name][1].append(br)
    def sd(xs):
        xs = [x for x in xs if not math.isnan(x)]
        return float(np.std(xs, ddof=1)) if len(xs) > 1 else float("nan")
    result = {
        "scorer": f"TF-IDF (1-{a.ngram} grams, sublinear tf, min_df 2) + logistic regression (C={a.C}) per label",
        "train_records": len(train_x), "valid_records": len(valid_x), "features": len(vec.vocabulary_),
        "labels": per_label, "macro_pr_auc": pr, "macro_roc_auc": roc,
        "noise": {"bootstrap": a.bootstrap, "macro_pr_auc_sd": sd(boot["baseline"][0]),
                  "macro_roc_auc_sd": sd(boot["baseline"][1])},
        "seconds": round(time.time() - start, 2),
    }
    for name, s in others.items():
        lab, (opr, oroc) = evaluate(s, valid_y, labels)
        diffs_pr = [x - y for x, y in zip(boot[name][0], boot["baseline"][0])]
        result.setdefault("compared", {})[name] = {
            "macro_pr_auc": opr, "macro_roc_auc": oroc, "macro_pr_auc_sd": sd(boot[name][0]),
            "pr_auc_minus_baseline_sd": sd(diffs_pr)}
    text = json.dumps(result, indent=2)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text + "\n")
    print(f"tfidf_baseline: macro PR-AUC {pr:.4f}, ROC-AUC {roc:.4f} on {len(valid_x)} validation records "
          f"(bootstrap sd {result['noise']['macro_pr_auc_sd']:.4f} / {result['noise']['macro_roc_auc_sd']:.4f}), "
          f"{result['seconds']} s")


if __name__ == "__main__":
    main()
