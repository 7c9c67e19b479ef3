#!/usr/bin/env bash
# The multi-GPU path on one GPU through the CLI, as an 8-GPU job runs it: `mpiexec -np 1 modtrain
# train` with dist.backend=nccl (bucketed reducer over NCCL, control plane over MPI, distributed
# evaluation, replica checks, checkpoints), --stop-after then --resume auto, export, predict, and
# the export loaded by the machine's own Hugging Face transformers (AutoTokenizer +
# AutoModelForSequenceClassification) with its ids and probabilities compared to modtrain's; then the same
# for masked-LM pretraining (train.objective mlm) and AutoModelForMaskedLM on its export.
# Called by scripts/gpu/check.sh. Usage: cli_np1.sh MODTRAIN REPO_DIR WORK_DIR; prints PASS/FAIL lines.
# The CPU rehearsal (check.sh --cpu) runs the same script with CLI_NP1_BACKEND=mpi,
# CLI_NP1_PRECISION=fp32 and CLI_NP1_TRANSFORMERS=0 (no PyTorch here): every path but NCCL's own
# checks and the transformers loads, which are then reported as not run.
set -uo pipefail
mt=$1 repo=$2 work=$3
backend=${CLI_NP1_BACKEND:-nccl} precision=${CLI_NP1_PRECISION:-bf16} transformers=${CLI_NP1_TRANSFORMERS:-1}
mkdir -p "$work" && cd "$work" || exit 1
fail() { echo "cli np1: FAIL: $*"; exit 1; }
np1=(mpiexec --oversubscribe -np 1 "$mt")
"$mt" data synth --out data --train 4000 --valid 400 > synth.log 2>&1 || fail "data synth"
"$mt" tokenizer train --input 'data/train-*.jsonl' --vocab-size 2000 --out vocab.txt > vocab.log 2>&1 || fail "tokenizer train"
cfg=(--config "$repo/configs/tiny.yaml" --set tokenizer.vocab=vocab.txt --set data.prepared_dir=prep --set run.dir=run
     --set train.max_steps=60 --set train.warmup_steps=6 --set log.every=10 --set eval.every=20 --set checkpoint.every=20
     --set "dist.backend=$backend" --set dist.check_replicas_every=10 --set "train.precision=$precision" --set train.lr=1e-3
     --set dist.timeout_s=45)
"$mt" data prepare "${cfg[@]}" > prepare.log 2>&1 || fail "data prepare"
"${np1[@]}" train "${cfg[@]}" --stop-after 40 > train1.log 2>&1 || { tail -5 train1.log; fail "train to step 40 ($backend, -np 1)"; }
grep -q "data parallel, gradients over $backend" train1.log || fail "the run did not take the $backend path: $(grep 'train:' train1.log)"
# The resumed run with NCCL's INFO log (a clean shutdown prints "Destroy COMPLETE" for each
# communicator and the job exits 0) and a timeline with CUDA-event lanes.
NCCL_DEBUG=INFO "${np1[@]}" train "${cfg[@]}" --resume auto --set dist.timeline=tl.json > train2.log 2>&1 ||
  { tail -5 train2.log; fail "--resume auto ($backend, -np 1; exit code $?)"; }
grep -q "resumed from .*step-0000040 at step 40 of 60" train2.log || fail "resume line"
# Every communicator initialised must be destroyed: the start-up parent prints one "Destroy
# COMPLETE" of its own, so "at least one" passed a final close() that failed.
if [[ $backend == nccl ]]; then
  inits=$(grep -c "Init COMPLETE" train2.log || true)
  destroyed=$(grep -c "Destroy COMPLETE" train2.log || true)
  [[ $inits -ge 1 && $destroyed -eq $inits ]] ||
    fail "$inits NCCL communicator(s) initialised, $destroyed destroyed: one was not shut down cleanly"
  grep -iE "NCCL WARN" train2.log | head -3 | sed 's/^/cli np1: nccl warning: /'
  echo "cli np1: clean NCCL shutdown: exit 0, $destroyed x 'Destroy COMPLETE', $(grep -c 'NCCL WARN' train2.log) NCCL WARN lines"
else
  echo "cli np1: NCCL shutdown check: not run ($backend backend)"
fi
GPU_LANES=$([[ $backend == nccl ]] && echo 1 || echo 0) python3 - tl-rank0.json <<'PY' || fail "timeline"
import json, statistics, sys
ev = [e for e in json.load(open(sys.argv[1]))["traceEvents"] if e.get("ph") == "X"]
def med(lane, pred):
    d = [e["dur"] for e in ev if e["tid"] == lane and pred(e["name"])]
    return (statistics.median(d), len(d)) if d else (float("nan"), 0)
for name in ("forward", "backward", "optimizer"):
    (h, n), (g, m) = med(0, lambda x: x == name), med(2, lambda x: x == name)
    print(f"cli np1: timeline {name}: host span median {h:.0f} us (n={n}), GPU (CUDA events) {g:.0f} us (n={m})")
(h, n), (g, m) = med(1, lambda x: x.startswith("all_reduce of gradient")), med(3, lambda x: x.startswith("all_reduce of gradient"))
print(f"cli np1: timeline bucket all_reduce: host launch-to-wait median {h:.0f} us (n={n}), NCCL stream {g:.0f} us (n={m})")
import os
if os.environ["GPU_LANES"] == "1":
    assert m > 0 and any(e["tid"] == 2 for e in ev), "no GPU lanes in the timeline"
else:
    assert n > 0 and any(e["tid"] == 0 for e in ev), "no host spans in the timeline"
PY
grep "^eval @ step\|^macro" train1.log train2.log | sed 's/^/cli np1: /'
# bf16 gradient reduction (dist.grad_reduce_dtype) with ZeRO-1 on the same path, from scratch to the
# same step: its mean training loss over the last 20 steps against the fp32 run's (stopped and
# resumed: bit-exact to an uninterrupted one), within 2%; and the gradient bytes per step halved.
"${np1[@]}" train "${cfg[@]}" --set run.dir=run-bf16 --set dist.grad_reduce_dtype=bf16 --set train.zero=1 \
  --set dist.timeline=tl-bf16.json > train-bf16.log 2>&1 || { tail -5 train-bf16.log; fail "train with bf16 gradient reduction"; }
python3 - run/metrics.jsonl run-bf16/metrics.jsonl tl-rank0.json tl-bf16-rank0.json <<'PY' || fail "bf16 gradient reduction"
import json, sys
def loss(path):
    rows = [json.loads(l) for l in open(path) if '"event":"train"' in l.replace(" ", "")]
    last = [r["loss"] for r in rows if r["step"] > 40]
    return sum(last) / len(last)
def grad_bytes(path):
    ev = [e for e in json.load(open(path))["traceEvents"] if e.get("ph") == "X" and e["tid"] == 1]
    spans = [e for e in ev if e["name"].startswith(("all_reduce of gradient", "reduce_scatter of gradient"))]
    return sum(e["args"]["bytes"] for e in spans) / max(1, len(spans))
fp32, bf16 = loss(sys.argv[1]), loss(sys.argv[2])
b32, b16 = grad_bytes(sys.argv[3]), grad_bytes(sys.argv[4])
print("cli np1: bf16 gradient reduction (ZeRO-1): mean loss over steps 41-60 %.4f against fp32's %.4f (%+.2f%%); "
      "bytes per gradient collective %.0f against %.0f (x%.2f)" % (bf16, fp32, 100 * (bf16 / fp32 - 1), b16, b32, b16 / b32))
assert abs(bf16 / fp32 - 1) < 0.02 and abs(b16 / b32 - 0.5) < 0.01
PY
"$mt" export --checkpoint run/checkpoints/best --out hf > export.log 2>&1 || fail "export"
python3 - > texts.txt <<'PY'
import json
texts = [json.loads(l)["text"] for l in open("data/valid-00000.jsonl")]
# raw posts, mentions, links and character references included: the export's tokenizer.json carries
# modtrain's tweet normalisation, so transformers must see the ids modtrain saw
plain = [t.replace("\n", " ") for t in texts][:48]
plain += ["you are all idiots and should leave", "buy cheap followers now", "the vaccine causes autism, wake up",
          "I will find you and hurt you", "lovely weather in the park today", "Ünïcödé têxt and emoji 😀 too"]
print("\n".join(plain))
PY
"$mt" tokenize --vocab hf/vocab.txt --tweets --max-len 64 < texts.txt > ids.jsonl || fail "tokenize"
"$mt" predict --model hf --input texts.txt --output pred.jsonl 2> predict.log || fail "predict on the export"
if [[ $transformers == 1 ]]; then
HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 python3 - <<'PY' || fail "transformers disagrees with modtrain on the export"
import json, torch
from transformers import AutoTokenizer, AutoModelForSequenceClassification
texts = open("texts.txt", encoding="utf-8").read().split("\n")
ours = [json.loads(l) for l in open("ids.jsonl")]
tok = AutoTokenizer.from_pretrained("hf")
enc = tok(texts, truncation=True, max_length=64)
mismatch = [i for i, (a, b) in enumerate(zip(enc["input_ids"], ours)) if a != b]
print("cli np1: tokenizer: %d texts, %d with different ids (%s)" % (len(texts), len(mismatch), type(tok).__name__))
model = AutoModelForSequenceClassification.from_pretrained("hf").eval()
labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
batch = tok(texts, truncation=True, max_length=64, padding=True, return_tensors="pt")
with torch.no_grad():
    probs = torch.sigmoid(model(**batch).logits.double())
pred = [json.loads(l) for l in open("pred.jsonl")]
worst = max(abs(probs[i][j].item() - p["scores"][l]) for i, p in enumerate(pred) for j, l in enumerate(labels))
order = list(pred[0]["scores"]) == labels
print("cli np1: transformers %s: max |p_transformers - p_modtrain| = %.2e over %d texts x %d labels; "
      "predict's scores in id2label order: %s" % (type(model).__name__, worst, len(pred), len(labels), order))
assert not mismatch and len(pred) == len(texts) and worst < 1e-4 and order
PY
else
  [[ $(wc -l < pred.jsonl) -eq $(wc -l < texts.txt) ]] || fail "predict wrote $(wc -l < pred.jsonl) lines for $(wc -l < texts.txt) texts"
  echo "cli np1: transformers loads: not run (CLI_NP1_TRANSFORMERS=0: no PyTorch here); predict scored $(wc -l < pred.jsonl) texts"
fi

# Masked-LM pretraining (train.objective mlm) on the same path: bf16 over NCCL at -np 1, stopped and
# resumed, exported, and loaded by transformers' AutoModelForMaskedLM (tied decoder, no missing
# weights), whose masked-token accuracy on held-out texts must be of the order modtrain reported.
mlm=("${cfg[@]}" --set train.objective=mlm --set train.pos_weight=none --set 'data.labels=[]' --set data.prepared_dir=prep-mlm --set run.dir=run-mlm
     --set train.max_steps=300 --set train.warmup_steps=20 --set train.lr=2e-3 --set eval.every=100 --set checkpoint.every=100)
"$mt" data prepare "${mlm[@]}" > prepare-mlm.log 2>&1 || fail "data prepare (unlabelled)"
"${np1[@]}" train "${mlm[@]}" --stop-after 100 > mlm1.log 2>&1 || { tail -5 mlm1.log; fail "MLM to step 100 ($backend, -np 1)"; }
"${np1[@]}" train "${mlm[@]}" --resume auto > mlm2.log 2>&1 || { tail -5 mlm2.log; fail "MLM --resume auto"; }
grep -q "resumed from .*step-0000100 at step 100 of 300" mlm2.log || fail "MLM resume line"
grep "^eval @ step" mlm1.log mlm2.log | sed 's/^/cli np1 mlm: /'
"$mt" export --checkpoint run-mlm/model --out hf-mlm > export-mlm.log 2>&1 || fail "MLM export"
if [[ $transformers == 1 ]]; then
HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 python3 - <<'PY' || fail "transformers' AutoModelForMaskedLM on the MLM export"
import json, torch
from transformers import AutoTokenizer, AutoModelForMaskedLM
ours = json.load(open("run-mlm/model/eval.json"))["metrics"]
tok = AutoTokenizer.from_pretrained("hf-mlm")
model, info = AutoModelForMaskedLM.from_pretrained("hf-mlm", output_loading_info=True)
model.eval()
missing = [k for k in info["missing_keys"] if not k.endswith("decoder.weight")]
tied = model.get_output_embeddings().weight.data_ptr() == model.get_input_embeddings().weight.data_ptr()
texts = [t for t in open("texts.txt", encoding="utf-8").read().split("\n") if t]
batch = tok(texts, truncation=True, max_length=64, padding=True, return_tensors="pt")
g = torch.Generator().manual_seed(0)
chosen = (torch.rand(batch["input_ids"].shape, generator=g) < 0.15) & (batch["attention_mask"] == 1)
for i, row in enumerate(batch["input_ids"].tolist()):
    chosen[i] &= torch.tensor(tok.get_special_tokens_mask(row, already_has_special_tokens=True)) == 0
inputs = batch["input_ids"].clone()
inputs[chosen] = tok.mask_token_id
with torch.no_grad():
    logits = model(input_ids=inputs, attention_mask=batch["attention_mask"]).logits
accuracy = (logits.argmax(-1)[chosen] == batch["input_ids"][chosen]).double().mean().item()
print("cli np1 mlm: transformers %s: missing %s, unexpected %s, decoder tied %s; masked-token accuracy %.3f on %d "
      "tokens (modtrain's evaluation: %.3f, perplexity %.2f)" % (type(model).__name__, missing,
      info["unexpected_keys"], tied, accuracy, int(chosen.sum()), ours["mlm_accuracy"], ours["perplexity"]))
assert not missing and not info["unexpected_keys"] and tied
assert ours["mlm_accuracy"] > 0.1 and accuracy > 0.5 * ours["mlm_accuracy"]
PY
else
  [[ -s hf-mlm/model.safetensors ]] || fail "the MLM export has no model.safetensors"
  echo "cli np1 mlm: AutoModelForMaskedLM load: not run (CLI_NP1_TRANSFORMERS=0)"
fi
echo "cli np1: PASS (train -np 1 $backend $precision, stop 40 + resume to 60, export, predict; MLM: stop 100 + resume to 300, export; transformers loads: $([[ $transformers == 1 ]] && echo checked || echo "not run"))"
