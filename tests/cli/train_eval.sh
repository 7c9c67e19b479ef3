#!/usr/bin/env bash
# The main job end to end with the real executable on a small synthetic set: synth -> vocab ->
# prepare -> train (metrics.jsonl, model dir) -> eval (table and --json, the model's thresholds).
# With RANKS > 1, training runs under mpiexec (MPI backend) and the rest is the same.
# Usage: train_eval.sh MODTRAIN REPO_DIR [RANKS]
set -euo pipefail
mt=$1 repo=$2 ranks=${3:-1}
train=("$mt")
[[ $ranks -gt 1 ]] && train=(mpiexec --oversubscribe -np "$ranks" "$mt")
source "$(dirname "$0")/common.sh"
synth_data "$mt" 2000 300 1500
cfg=(--config "$repo/configs/tiny.yaml" --set tokenizer.vocab=vocab.txt --set data.prepared_dir=prep --set run.dir=run
     --set train.max_steps=40 --set train.warmup_steps=4 --set log.every=10 --set eval.every=20 --set dist.threads=1)
"$mt" data prepare "${cfg[@]}" > /dev/null
"${train[@]}" train "${cfg[@]}" | tee train.txt
grep -q "global batch = 32 micro x 1 accum x $ranks ranks = $((32 * ranks))" train.txt || fail "global batch line"
grep -q "^eval @ step 20:" train.txt || fail "periodic evaluation"
[[ $(grep -c '"event":"train"' run/metrics.jsonl) -eq 4 ]] || fail "4 train events in metrics.jsonl"
[[ $(grep -c '"event":"eval"' run/metrics.jsonl) -eq 2 ]] || fail "2 eval events in metrics.jsonl"
for f in model.safetensors config.json vocab.txt modtrain.json; do [[ -s run/model/$f ]] || fail "run/model/$f"; done
grep -q '"architectures"' run/model/config.json || fail "HF config.json"
[[ -s run/config.yaml ]] || fail "resolved config in the run dir"
"$mt" eval --model run/model --data 'data/valid-*.jsonl' | tee eval.txt
grep -q "^macro " eval.txt || fail "eval table"
"$mt" eval --model run/model --data 'data/valid-*.jsonl' --json > eval.json
python3 - <<'PY' || fail "eval --json"
import json
r = json.load(open("eval.json"))
assert r["records"] == 300, r["records"]
assert set(r["labels"]) == {"hate", "harassment", "threat", "sexual", "self_harm", "spam", "misinformation"}
assert 0.5 < r["macro"]["roc_auc"] <= 1.0, r["macro"]
assert 0 <= r["macro"]["ece"] < 0.5 and 0 <= r["macro"]["brier"] < 0.5, r["macro"]  # calibration per label and macro
assert all(0 <= r["labels"][l]["ece"] <= 1 and 0 <= r["labels"][l]["brier"] <= 1 for l in r["labels"])
thresholds = json.load(open("run/model/modtrain.json"))["thresholds"]
assert [r["labels"][l]["threshold"] for l in json.load(open("run/model/modtrain.json"))["labels"]] == thresholds
# every JSON that lists labels lists them in the model's order (config.json id2label), not sorted
order = json.load(open("run/model/modtrain.json"))["labels"]
assert order != sorted(order), "the test needs labels that are not in alphabetical order"
assert list(r["labels"]) == order, list(r["labels"])
config = json.load(open("run/model/config.json"))
assert list(config["id2label"].values()) == order and list(config["label2id"]) == order, config["id2label"]
evals = [json.loads(l) for l in open("run/metrics.jsonl") if '"event":"eval"' in l]
assert all(list(e["metrics"]["labels"]) == order for e in evals)
assert list(json.load(open("run/model/eval.json"))["metrics"]["labels"]) == order
PY
"$mt" data stats prep --json > stats.json
python3 -c 'import json,sys; s=json.load(open("stats.json")); o=json.load(open("run/model/modtrain.json"))["labels"]; sys.exit(list(s["train"]["labels"]) != o)' ||
  fail "data stats --json: labels in the data's order"
# predict: JSONL in, one JSON line out per record, ids carried, flags by the model's thresholds
"$mt" predict --model run/model --input data/valid-00000.jsonl --output pred.jsonl
[[ $(wc -l < pred.jsonl) -eq 300 ]] || fail "predict: one line per record"
python3 - <<'PY' || fail "predict output"
import json
rows = [json.loads(l) for l in open("pred.jsonl")]
meta = json.load(open("run/model/modtrain.json"))
assert rows[0]["id"] == "valid-0" and rows[0]["line"] == 1, rows[0]
# records are scored sorted by length within a window, written back in input order
assert [r["line"] for r in rows] == list(range(1, 301)), "predict output not in input order"
assert [r["id"] for r in rows] == ["valid-%d" % i for i in range(300)]
for r in rows:
    assert list(r["scores"]) == meta["labels"], list(r["scores"])  # the model's label order
    assert r["flagged"] == [l for l, t in zip(meta["labels"], meta["thresholds"]) if r["scores"][l] >= t], r
PY
"$mt" predict --model run/model --input data/valid-00000.jsonl --output pred1.jsonl --batch 1
python3 - <<'PY' || fail "predict --batch 1 gives other scores than the sorted, batched path"
import json
a = [json.loads(l) for l in open("pred.jsonl")]
b = [json.loads(l) for l in open("pred1.jsonl")]
assert len(a) == len(b)
for x, y in zip(a, b):
    assert x["id"] == y["id"], (x, y)
    assert all(abs(x["scores"][k] - y["scores"][k]) < 1e-5 for k in x["scores"]), (x, y)
PY
# blank lines are skipped and counted, as `data prepare` does (a trailing one too)
printf 'you are pathetic @bob\n\nbuy now http://x.co\n \n' | "$mt" predict --model run/model --input - > stdin.jsonl 2> stdin.err
[[ $(wc -l < stdin.jsonl) -eq 2 ]] || fail "predict from stdin"
grep -q "predicted 2 records (0 rejected, 2 blank lines skipped)" stdin.err || fail "predict summary line: $(cat stdin.err)"
printf '{"id": "a", "text": "ok"}\n{"id": "b", "text": \n' > bad.jsonl
"$mt" predict --model run/model --input bad.jsonl --on-bad-record skip > skip.jsonl 2> skip.err
[[ $(wc -l < skip.jsonl) -eq 1 ]] && grep -q "bad.jsonl:2: .*; skipped" skip.err && grep -q "(1 rejected" skip.err ||
  fail "predict skip policy: $(cat skip.err)"
set +e
"$mt" predict --model run/model --input bad.jsonl > /dev/null 2> fail.err; rc=$?
set -e
[[ $rc -eq 2 ]] && grep -q "error: bad.jsonl:2: .*(use --on-bad-record skip" fail.err || fail "predict fail policy: $(cat fail.err)"

# export: the Hugging Face layout, tokenizer.json consistent with the vocab and settings
"$mt" export --checkpoint run/model --out hf > /dev/null
for f in config.json model.safetensors vocab.txt tokenizer.json tokenizer_config.json special_tokens_map.json thresholds.json README.md; do
  [[ -s hf/$f ]] || fail "export: hf/$f"
done
cmp -s hf/model.safetensors run/model/model.safetensors || fail "export: weights"
grep -q "| ECE | Brier | support |" hf/README.md || fail "export: the model card's calibration columns"
python3 - <<'PY' || fail "export: tokenizer.json"
import json
t = json.load(open("hf/tokenizer.json"))
vocab = open("hf/vocab.txt", encoding="utf-8").read().split("\n")[:-1]
steps = t["normalizer"]["normalizers"]  # the tweet normalisation (normalize_tweets), then BERT's
assert t["normalizer"]["type"] == "Sequence" and steps[0]["type"] == "Replace" and steps[-2]["type"] == "Strip", steps[:2]
assert {"type": "Replace", "pattern": {"Regex": "(?<![0-9A-Za-z_])@[0-9A-Za-z_]+"}, "content": "@user"} in steps
assert steps[-1] == {"type": "BertNormalizer", "clean_text": True, "handle_chinese_chars": True, "strip_accents": None, "lowercase": True}
assert json.load(open("hf/modtrain.json"))["tweet_normalizer_version"] == 2
assert t["pre_tokenizer"]["type"] == "BertPreTokenizer" and t["model"]["type"] == "WordPiece"
assert t["model"]["vocab"] == {tok: i for i, tok in enumerate(vocab)}
assert t["post_processor"]["special_tokens"]["[CLS]"]["ids"] == [vocab.index("[CLS]")]
assert t["truncation"]["max_length"] == 64
th = json.load(open("hf/thresholds.json")); meta = json.load(open("run/model/modtrain.json"))
assert list(th) == meta["labels"] and list(th.values()) == meta["thresholds"]
assert json.load(open("hf/config.json"))["architectures"] == ["BertForSequenceClassification"]
PY

# a model trained with the version-1 tweet normaliser: tokenizer.json cannot express it exactly
cp -r run/model old-model
python3 -c 'import json; p="old-model/modtrain.json"; m=json.load(open(p)); del m["tweet_normalizer_version"]; json.dump(m, open(p, "w"))'
set +e
"$mt" export --checkpoint old-model --out old-hf > skew.txt 2>&1; rc=$?
set -e
[[ $rc -eq 2 ]] && grep -q "tweet normaliser version 1" skew.txt && grep -q -- "--allow-skew" skew.txt || fail "skewed export: $(cat skew.txt)"
[[ $(wc -l < skew.txt) -eq 1 ]] || fail "skewed export: one line"
"$mt" export --checkpoint old-model --out old-hf --allow-skew > /dev/null || fail "export --allow-skew"
grep -q '^\*\*Train/serve skew (exported with --allow-skew)' old-hf/README.md || fail "the skew in bold in the card"
grep -q "reproduces \`modtrain predict\`" hf/README.md || fail "the card's usage snippet"

# a precision the CPU cannot do is one clear error
set +e
"${train[@]}" train "${cfg[@]}" --set train.precision=bf16 > bf16.txt 2>&1; rc=$?
set -e
[[ $rc -ne 0 ]] && grep -q "train.precision = bf16 needs a CUDA device" bf16.txt || fail "bf16 on CPU error"
echo "train/eval ok"
