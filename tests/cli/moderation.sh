#!/usr/bin/env bash
# Moderation-grade evaluation end to end with the real executable (README: moderation-grade evaluation):
#   synthetic posts with identity mentions (mostly benign) and soft labels from 5 simulated
#   annotators (en and es, a `lang` field) -> prepare with data.soft_labels, data.subgroups and
#   eval.slice_by (the manifest and summary say so) -> train on 2 ranks with eval.calibrate ->
#   the temperatures are in modtrain.json and config.json, the bias, calibration and slice tables in
#   metrics.jsonl -> `eval` (table and --json) reads the data as the model was trained and applies
#   the temperatures -> the export's card has the bias table and the calibration recipe -> predict
#   on the export equals predict on the model directory.
# Writes OUT/moderation.json (the figures the nightly judges: worst subgroup AUC, ECE before and
# after calibration) and OUT/eval.json when OUT is given.
# Usage: moderation.sh MODTRAIN REPO_DIR [OUT_DIR]
set -euo pipefail
mt=$1 repo=$2 out=${3:-}
[[ -n $out ]] && out=$(mkdir -p "$out" && cd "$out" && pwd)
source "$(dirname "$0")/common.sh"
py=/usr/bin/python3
np2=(mpiexec --oversubscribe -np 2 "$mt")
"$mt" data synth --out data --train 8000 --valid 2000 --short --identities --annotators 5 --languages en,en,es > /dev/null
"$mt" tokenizer train --input 'data/train-*.jsonl' --vocab-size 4000 --out vocab.txt > /dev/null 2>&1
groups=quendari,zorblaxian,morvish,telluran,ostrani,vexling
cfg=(--config "$repo/configs/tiny.yaml" --set tokenizer.vocab=vocab.txt --set dist.threads=1 --set log.every=100
     --set checkpoint.every=0 --set data.prepared_dir=prep --set 'data.train=[data/train-*.jsonl]'
     --set 'data.valid=[data/valid-*.jsonl]' --set data.soft_labels=true --set "data.subgroups=[$groups]"
     --set 'eval.slice_by=[lang]' --set eval.calibrate=true --set train.max_steps=600 --set train.lr=1e-3
     --set eval.every=300)
"$mt" data prepare "${cfg[@]}" > prep.txt 2>&1 || { cat prep.txt; fail "prepare soft labels and subgroups"; }
grep -q "^train: 8000 input records = 8000 kept + 0 rejected" prep.txt || { cat prep.txt; fail "prepare summary"; }
"$py" -c 'import json,sys; m=json.load(open("prep/manifest.json")); sys.exit(not (m["soft_labels"] and m["label_scale"] == 240 and len(m["subgroups"]) == 6 and m["slice_by"] == ["lang"]))' ||
  fail "the manifest records soft labels, subgroups and slice fields"

"${np2[@]}" train "${cfg[@]}" --set run.dir=run > train.txt 2>&1 || { cat train.txt; fail "train with soft labels on 2 ranks"; }
grep -q "worst subgroup AUC" train.txt || { cat train.txt; fail "the eval line names the worst subgroup AUC"; }
"$py" - <<'PY' || fail "calibration saved with the model; bias and slices in metrics.jsonl"
import json
meta = json.load(open("run/model/modtrain.json"))
config = json.load(open("run/model/config.json"))
assert len(meta["temperatures"]) == 7 and meta["soft_labels"] and meta["slice_by"] == ["lang"], meta
assert config["modtrain"]["temperatures"]["hate"] == meta["temperatures"][0], config["modtrain"]
evals = [json.loads(l)["metrics"] for l in open("run/metrics.jsonl") if '"eval"' in l]
last = evals[-1]
assert len(last["bias"]["labels"]) == 7 and last["bias"]["worst_subgroup_auc"] is not None, last["bias"]
assert {r["value"] for r in last["slices"]["lang"]} == {"en", "es"}, last["slices"]
assert all("calibration" in r for r in last["labels"].values())
PY

# eval: the model's own data settings and temperatures; the table and --json
"$mt" eval --model run/model --data 'data/valid-*.jsonl' > eval.txt 2> eval.err || { cat eval.err; fail "eval"; }
for want in "temperature scaling:" "bias hate: score" "worst subgroup AUC:" "slice lang"; do
  grep -q "$want" eval.txt || { cat eval.txt; fail "eval table: $want"; }
done
"$mt" eval --model run/model --data 'data/valid-*.jsonl' --json > eval.json 2> /dev/null || fail "eval --json"
"$mt" eval --model run/model --data 'data/valid-*.jsonl' --json --positive-at 0.8 > eval80.json 2> /dev/null ||
  fail "eval --positive-at"
"$py" - <<'PY' || fail "eval --json figures"
import json
e, e80 = json.load(open("eval.json")), json.load(open("eval80.json"))
train_last = [json.loads(l)["metrics"] for l in open("run/metrics.jsonl") if '"eval"' in l][-1]
# the same model, data, temperatures and thresholds as the run's final evaluation
assert abs(e["macro"]["pr_auc"] - train_last["macro"]["pr_auc"]) < 1e-4, (e["macro"], train_last["macro"])
assert abs(e["bias"]["worst_subgroup_auc"] - train_last["bias"]["worst_subgroup_auc"]) < 1e-4
# a higher bar for positives: fewer positives
assert sum(l["support"] for l in e80["labels"].values()) < sum(l["support"] for l in e["labels"].values())
PY

# export: the card carries the bias table and how to apply the temperatures; predict agrees
"$mt" export --checkpoint run/model --out hf > /dev/null 2>&1 || fail "export"
for want in "### Unintended bias" "### Calibration" "The scores are calibrated" "logits / T"; do
  grep -q "$want" hf/README.md || fail "model card: $want"
done
"$py" -c '
import json
for i, l in enumerate(open("data/valid-00000.jsonl")):
    if i >= 100: break
    print(json.loads(l)["text"].replace("\n", " "))' > texts.txt
"$mt" predict --model hf --input texts.txt --output pred_hf.jsonl 2> /dev/null || fail "predict on the export"
"$mt" predict --model run/model --input texts.txt --output pred_dir.jsonl 2> /dev/null || fail "predict on the model"
cmp -s pred_hf.jsonl pred_dir.jsonl || fail "predict on the export differs from the model directory"

"$py" - "$out" <<'PY'
import json, sys
e = json.load(open("eval.json"))
labels = e["labels"].values()
figures = {
    "worst_subgroup_auc": e["bias"]["worst_subgroup_auc"],
    "bias_scores": {k: v["bias_score"] for k, v in e["bias"]["labels"].items()},
    "ece_before": sum(l["calibration"]["ece_before"] for l in labels) / len(labels),
    "ece_after": e["macro"]["ece"],
    "macro_pr_auc": e["macro"]["pr_auc"],
}
print("worst subgroup AUC %.3f, macro ECE %.4f -> %.4f (temperature scaling), macro PR-AUC %.3f" % (
    figures["worst_subgroup_auc"], figures["ece_before"], figures["ece_after"], figures["macro_pr_auc"]))
if sys.argv[1]:
    json.dump(figures, open(sys.argv[1] + "/moderation.json", "w"), indent=2)
    json.dump(e, open(sys.argv[1] + "/eval.json", "w"))
PY
echo "moderation ok"
