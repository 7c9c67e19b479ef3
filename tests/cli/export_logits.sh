#!/usr/bin/env bash
# "Logits must match a reference BERT implementation on the exported weights": train briefly,
# export, and compare modtrain's scores (predict on the checkpoint, padded batches, LibTorch)
# with an independent float64 NumPy BERT (tests/reference/bert_numpy.py, one unpadded text at a
# time) reading only the export's config.json and model.safetensors. Token ids come from
# `modtrain tokenize` with the export's vocab, whose tokenizer.json is checked against Hugging
# Face tokenizers elsewhere. Bar: max |p_modtrain - p_reference| < 2e-5 over all labels and texts.
# Usage: export_logits.sh MODTRAIN REPO_DIR
set -euo pipefail
mt=$1 repo=$2
source "$(dirname "$0")/common.sh"
synth_data "$mt" 1000 200 1000
cfg=(--config "$repo/configs/tiny.yaml" --set tokenizer.vocab=vocab.txt --set data.prepared_dir=prep --set run.dir=run
     --set train.max_steps=30 --set train.warmup_steps=3 --set eval.every=0 --set dist.threads=1
     --set train.pos_weight=none)  # unweighted losses: the first-step comparison below reads them
"$mt" data prepare "${cfg[@]}" > /dev/null
"$mt" train "${cfg[@]}" > train.txt 2>&1 || { cat train.txt; fail "train"; }
"$mt" export --checkpoint run/checkpoints/step-0000030 --out hf > /dev/null
/usr/bin/python3 -c '
import json, sys
for i, line in enumerate(open("data/valid-00000.jsonl")):
    if i >= 40: break
    print(json.loads(line)["text"].replace("\n", " "))
' > texts.txt
"$mt" tokenize --vocab hf/vocab.txt --tweets --max-len 64 < texts.txt > ids.jsonl
"$mt" predict --model run/checkpoints/step-0000030 --input texts.txt --output pred.jsonl 2> /dev/null
/usr/bin/python3 "$repo/tests/reference/bert_numpy.py" hf ids.jsonl > ref.jsonl
/usr/bin/python3 - <<'PY' || fail "logits differ from the reference"
import json, math
labels = [v for k, v in sorted(json.load(open("hf/config.json"))["id2label"].items(), key=lambda kv: int(kv[0]))]
ref = [json.loads(l) for l in open("ref.jsonl")]
pred = [json.loads(l) for l in open("pred.jsonl")]
assert len(ref) == len(pred) == 40, (len(ref), len(pred))
worst = 0.0
for r, p in zip(ref, pred):
    for label, logit in zip(labels, r):
        worst = max(worst, abs(1 / (1 + math.exp(-logit)) - p["scores"][label]))
print("max |p_modtrain - p_reference| = %.2e over %d texts x %d labels" % (worst, len(ref), len(labels)))
assert worst < 2e-5
PY
# The export is a Hugging Face BERT: fine-tune from it (model.init_from). Same labels: the head
# is loaded too, so the first step's loss is the trained model's, not a fresh head's.
"$mt" train "${cfg[@]}" --set run.dir=ft --set model.init_from=hf --set train.max_steps=1 --set train.warmup_steps=0 --set log.every=1 > ft.txt 2>&1 ||
  { cat ft.txt; fail "fine-tune from the export"; }
grep -q "model.init_from hf: .* tensors loaded; classifier head from the checkpoint" ft.txt || { cat ft.txt; fail "init_from summary"; }
/usr/bin/python3 - <<'PY' || fail "init_from did not start from the exported weights"
import json
first = lambda path: next(json.loads(l) for l in open(path) if '"event":"train"' in l)
fresh, tuned = first("run/metrics.jsonl")["loss"], first("ft/metrics.jsonl")["loss"]
print("first-step loss: fresh model %.4f, fine-tuned from the export %.4f" % (fresh, tuned))
assert tuned < fresh - 0.05
PY
# A resumed run takes its weights from the checkpoint: the pretrained directory may be gone.
cp -r hf hf_gone
"$mt" train "${cfg[@]}" --set run.dir=ft3 --set model.init_from=hf_gone --set train.max_steps=2 --set train.warmup_steps=0 --stop-after 1 > /dev/null 2>&1 ||
  fail "fine-tune, first step"
rm -rf hf_gone
"$mt" train "${cfg[@]}" --set run.dir=ft3 --set model.init_from=hf_gone --set train.max_steps=2 --set train.warmup_steps=0 --resume auto > ft3.txt 2>&1 ||
  { cat ft3.txt; fail "resume of a fine-tuning run needed model.init_from again"; }
set +e
"$mt" train "${cfg[@]}" --set run.dir=ft2 --set model.init_from=hf --set model.hidden=64 --set model.intermediate=256 > bad.txt 2>&1
rc=$?
set -e
[[ $rc -eq 2 ]] || { cat bad.txt; fail "init_from shape mismatch should exit 2, got $rc"; }
grep -q "error: hf/config.json: the pretrained model's shape differs from this config; set model.hidden: 128 (is 64), model.intermediate: 512 (is 256)" bad.txt ||
  { cat bad.txt; fail "init_from mismatch message"; }
echo "export logits ok"
