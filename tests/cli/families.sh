#!/usr/bin/env bash
# Fine-tuning a pretrained encoder of each family end to end with the real executable: a small
# Hugging Face directory (tests/reference/make_hf_model.py: random weights, the real test
# tokenizers) -> `data prepare` with its tokenizer on multilingual posts -> 20 steps on 2 ranks
# (model.init_from), and again stopped at step 10 and resumed (bitwise equal) -> export in the
# family's layout -> predict with the run's model and with the
# export (identical scores), the export's scores against the float64 NumPy reference reading only
# the export (2e-5), `tokenize` with the export equal to the original tokenizer, eval on the export,
# and the export imported again (its head, same labels) by a second fine-tune.
# Usage: families.sh MODTRAIN REPO_DIR FAMILY   (FAMILY: roberta | xlmr | twhin)
set -euo pipefail
mt=$1 repo=$2 family=$3
source "$(dirname "$0")/common.sh"
py=/usr/bin/python3
labels=hate,harassment,threat,sexual,self_harm,spam,misinformation
case $family in
  roberta) arch=roberta positions=absolute eps=1e-05 max_positions=66 ;;
  xlmr) arch=xlm-roberta positions=absolute eps=1e-05 max_positions=66 ;;
  twhin) arch=bert positions=relative_key eps=1e-12 max_positions=64 ;;
  *) fail "unknown family $family" ;;
esac
"$py" "$repo/tests/reference/make_hf_model.py" "$family" "$repo/tests/data/tokenizer" hf --max-len 64
"$mt" data synth --out data --train 600 --valid 120 --languages en,es,ar,hi,ru,ja > /dev/null
cfg=(--config "$repo/configs/tiny.yaml" --set tokenizer.vocab=hf --set data.prepared_dir=prep --set run.dir=run
     --set model.arch=$arch --set model.position_embedding_type=$positions --set model.layer_norm_eps=$eps
     --set model.hidden=32 --set model.layers=2 --set model.heads=2 --set model.intermediate=64
     --set model.max_positions=$max_positions --set data.max_len=64 --set model.init_from=hf
     --set train.max_steps=20 --set train.warmup_steps=2 --set eval.every=10 --set dist.threads=1)
"$mt" data prepare "${cfg[@]}" > prep.txt 2>&1 || { cat prep.txt; fail "prepare with the $family tokenizer"; }
mpiexec --oversubscribe -np 2 "$mt" train "${cfg[@]}" > train.txt 2>&1 || { cat train.txt; fail "2-rank fine-tune"; }
grep -q "model.init_from hf: $arch, .* tensors loaded; classifier head fresh" train.txt || { cat train.txt; fail "init_from summary"; }
# Stopped after step 10 and resumed on 2 ranks: the same weights, bit for bit (the checkpoint
# carries the family's tokenizer files; resume compares their fingerprint with tokenizer.vocab's).
mpiexec --oversubscribe -np 2 "$mt" train "${cfg[@]}" --set run.dir=resumed --stop-after 10 > stop.txt 2>&1 ||
  { cat stop.txt; fail "stop after step 10"; }
mpiexec --oversubscribe -np 2 "$mt" train "${cfg[@]}" --set run.dir=resumed --resume auto > resume.txt 2>&1 ||
  { cat resume.txt; fail "resume"; }
cmp -s run/model/model.safetensors resumed/model/model.safetensors || fail "the resumed run ended with other weights"
"$mt" export --checkpoint run/model --out export > /dev/null
"$py" - "$arch" <<'PY' || fail "the export's layout"
import json, os, sys
arch = sys.argv[1]
c = json.load(open("export/config.json"))
assert c["model_type"] == arch, c["model_type"]
t = json.load(open("export/tokenizer_config.json"))
want = "RobertaTokenizer" if arch == "roberta" else "XLMRobertaTokenizer"
assert t["tokenizer_class"] == want, t
assert os.path.exists("export/tokenizer.json")
if arch == "roberta":
    assert os.path.exists("export/vocab.json") and os.path.exists("export/merges.txt")
print("export layout:", c["architectures"], t["tokenizer_class"])
PY
"$py" -c '
import json
for i, line in enumerate(open("data/valid-00000.jsonl")):
    if i >= 40: break
    print(json.loads(line)["text"].replace("\n", " "))
' > texts.txt
"$mt" tokenize --tokenizer hf --tweets --max-len 64 < texts.txt > ids.jsonl
"$mt" tokenize --tokenizer export --tweets --max-len 64 < texts.txt > ids_export.jsonl
cmp -s ids.jsonl ids_export.jsonl || fail "the export's tokenizer gives other ids"
"$mt" predict --model run/model --input texts.txt --output pred_run.jsonl 2> /dev/null
"$mt" predict --model export --input texts.txt --output pred_export.jsonl 2> /dev/null
cmp -s pred_run.jsonl pred_export.jsonl || fail "the export scores differently from the run's model"
"$py" "$repo/tests/reference/bert_numpy.py" export ids.jsonl > ref.jsonl
"$py" - <<'PY' || fail "logits differ from the reference"
import json, math
labels = [v for k, v in sorted(json.load(open("export/config.json"))["id2label"].items(), key=lambda kv: int(kv[0]))]
ref = [json.loads(l) for l in open("ref.jsonl")]
pred = [json.loads(l) for l in open("pred_export.jsonl")]
assert len(ref) == len(pred) == 40, (len(ref), len(pred))
worst = max(abs(1 / (1 + math.exp(-logit)) - p["scores"][label]) for r, p in zip(ref, pred) for label, logit in zip(labels, r))
print("max |p_modtrain - p_reference| = %.2e over %d texts x %d labels" % (worst, len(ref), len(labels)))
assert worst < 2e-5
PY
"$mt" eval --model export --data 'data/valid-*.jsonl' --json > eval.json || fail "eval on the export"
grep -q '"records":120' eval.json || { cat eval.json; fail "eval records"; }
# The export is the family's HF layout with our labels: a second fine-tune takes its head too.
"$mt" train "${cfg[@]}" --set run.dir=ft --set model.init_from=export --set tokenizer.vocab=export \
  --set data.prepared_dir=prep2 --set train.max_steps=1 --set train.warmup_steps=0 > ft.txt 2>&1 || { cat ft.txt; fail "re-import"; }
grep -q "model.init_from export: $arch, .* tensors loaded; classifier head from the checkpoint" ft.txt || { cat ft.txt; fail "re-import summary"; }
echo "families $family ok"
