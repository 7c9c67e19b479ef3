#!/usr/bin/env bash
# The nightly run end to end (scripts/nightly.sh with the built binary): it must pass on a
# healthy build and write REPORT.md, report.json and the four plots; the same figures against
# impossible bars must give a FAIL verdict and exit 1.
# Usage: nightly.sh MODTRAIN REPO_DIR
set -uo pipefail
mt=$1 repo=$2
dir=$(mktemp -d); trap 'rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
"$repo/scripts/nightly.sh" --binary "$mt" --out "$dir/n" || { cat "$dir"/n/logs/*.log | tail -50; fail "nightly verdict on a healthy build"; }
for f in REPORT.md report.json plots/loss.png plots/lr.png plots/eval.png plots/throughput.png plots/reliability.png plots/subgroups.png plots/pretrain/eval.png \
  plots/pretrain/loss.png; do
  [[ -s $dir/n/$f ]] || fail "$f missing"
done
grep -q "^# Nightly report: PASS" "$dir/n/REPORT.md" || fail "REPORT.md verdict"
/usr/bin/python3 - "$dir/n/report.json" <<'PY' || fail "report.json content"
import json, sys
r = json.load(open(sys.argv[1]))
names = {c["name"] for c in r["checks"]}
assert r["verdict"] == "PASS", r["verdict"]
assert {"resume_exact", "throughput", "export_equals_checkpoint", "reference_logits", "quality_macro_roc_auc",
        "beats_baseline", "below_ceiling",
        "finetune_roberta", "finetune_twhin", "pretrain_beats_scratch", "bias_worst_subgroup_auc",
        "calibration_lowers_ece"} <= names, names
assert all(c["ok"] for c in r["checks"] if c["name"] == "pretrain_beats_scratch")
p = r["figures"]["pretrain"]
assert p["macro_pr_auc_pretrained"] > p["macro_pr_auc_scratch"], p
PY
# Impossible bars: the verdict must turn.
/usr/bin/python3 -c '
import json, sys
b = json.load(open(sys.argv[1])); b["quality_floor"]["roc_auc"] = 0.999; b["bias_floor"]["worst_subgroup_auc"] = 0.999
for m in b["throughput"]["by_machine"].values(): m["train_per_reference"] = 1e9
json.dump(b, open(sys.argv[2], "w"))' "$repo/bench/baseline/nightly.json" "$dir/impossible.json"
/usr/bin/python3 "$repo/scripts/nightly_report.py" --out "$dir/n" --work "$dir/n/work" --baseline "$dir/impossible.json" > "$dir/fail.txt"
rc=$?
[[ $rc -eq 1 ]] || fail "impossible bars should exit 1, got $rc"
grep -q "quality_macro_roc_auc *FAIL" "$dir/fail.txt" || fail "quality bar not enforced"
grep -q "throughput *FAIL" "$dir/fail.txt" || fail "throughput bar not enforced"
grep -q "bias_worst_subgroup_auc *FAIL" "$dir/fail.txt" || fail "worst-subgroup floor not enforced"
# A baseline far above modtrain: beats_baseline must fail (the same figures otherwise).
/usr/bin/python3 -c '
import json, sys
b = json.load(open(sys.argv[1])); b["macro_pr_auc"] = 0.99
json.dump(b, open(sys.argv[1], "w"))' "$dir/n/baseline.json"
/usr/bin/python3 "$repo/scripts/nightly_report.py" --out "$dir/n" --work "$dir/n/work" --baseline "$repo/bench/baseline/nightly.json" > "$dir/fail2.txt"
[[ $? -eq 1 ]] || fail "a baseline above modtrain should exit 1"
grep -q "beats_baseline *FAIL" "$dir/fail2.txt" || fail "the baseline comparison not enforced"
grep -q "^# Nightly report: FAIL" "$dir/n/REPORT.md" || fail "REPORT.md should say FAIL"
echo "nightly ok"
