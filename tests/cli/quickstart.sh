#!/usr/bin/env bash
# The README's first command as a new user runs it: scripts/quickstart.sh end to end on
# the context task, then its model judged against what it printed beside it:
#   - macro PR-AUC at least 0.05 above TF-IDF + logistic regression on the same split, macro ROC-AUC
#     above it, and not above the task's ceiling (the Bayes-optimal scores) by more than the noise;
#   - the demo posts (scripts/demo_posts.txt): the insult flagged for harassment alone, the clean
#     post for nothing, the spam for spam alone, the counter-speech quoting an insult for nothing.
# Usage: quickstart.sh MODTRAIN REPO_DIR
set -euo pipefail
mt=$1 repo=$2
source "$(dirname "$0")/common.sh"
MODTRAIN=$mt QUICKSTART_DIR=$PWD/qs "$repo/scripts/quickstart.sh" > quickstart.txt 2>&1 ||
  { tail -40 quickstart.txt; fail "scripts/quickstart.sh"; }
for want in "^modtrain \(tiny BERT" "^TF-IDF \+ logistic regression" "^ceiling \(Bayes-optimal scores\)" "-> flagged: harassment$"; do
  grep -qE -- "$want" quickstart.txt || { tail -30 quickstart.txt; fail "quickstart prints: $want"; }
done
/usr/bin/python3 - qs "$repo/scripts/demo_posts.txt" <<'PY' || { tail -30 quickstart.txt; fail "the quickstart model against the baseline and the demo posts"; }
import json, sys
work, demo = sys.argv[1], sys.argv[2]
model = json.load(open(f"{work}/eval.json"))["macro"]
base = json.load(open(f"{work}/baseline.json"))
ceil = json.load(open(f"{work}/data/ceiling.json"))
compared = 0
def check(ok, what):
    global compared
    compared += 1
    print(("ok   " if ok else "FAIL ") + what)
    return ok
good = check(base["valid_records"] == 5000 and base["train_records"] == 100000, "the baseline scored the quickstart's split")
good &= check(model["pr_auc"] >= base["macro_pr_auc"] + 0.05,
              f"macro PR-AUC {model['pr_auc']:.4f} >= TF-IDF + LR {base['macro_pr_auc']:.4f} + 0.05")
good &= check(model["roc_auc"] > base["macro_roc_auc"],
              f"macro ROC-AUC {model['roc_auc']:.4f} > TF-IDF + LR {base['macro_roc_auc']:.4f}")
sd = base["noise"]["macro_pr_auc_sd"]
good &= check(model["pr_auc"] <= ceil["macro_pr_auc"] + 3 * sd,
              f"macro PR-AUC {model['pr_auc']:.4f} <= ceiling {ceil['macro_pr_auc']:.4f} + 3 sd (a model above the Bayes scores means a leak)")
want = [["harassment"], [], ["spam"], []]
posts = [l.rstrip("\n") for l in open(demo)]
preds = [json.loads(l) for l in open(f"{work}/predictions.jsonl")]
good &= check(len(posts) == len(want) == len(preds), f"{len(preds)} predictions for {len(posts)} demo posts")
for post, w, p in zip(posts, want, preds):
    good &= check(p["flagged"] == w, f"{post!r}: flagged {p['flagged']}, expected {w}")
assert compared == 9, f"compared {compared} figures, expected 9"
sys.exit(0 if good else 1)
PY
echo "quickstart ok"
