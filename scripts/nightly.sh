#!/usr/bin/env bash
# The nightly small-scale run: on a plain CPU machine (2 cores: about 10 minutes after the build)
# it runs the whole product end to end on configs/tiny.yaml and ends with a verdict.
#
#   synthesise tweets (the quickstart's context task: 100k posts, 5000 validation) -> train a
#   WordPiece vocab -> prepare shards -> train on 2 MPI ranks -> evaluate -> TF-IDF + logistic
#   regression on the same split (bench/peer/tfidf_baseline.py) and the task's ceiling (the
#   Bayes-optimal scores `data synth` writes): modtrain must not fall below the baseline by more
#   than the split's noise -> kill -9 a shorter run after its first checkpoint, resume it, and check
#   its final weights equal the same run uninterrupted bit for bit -> export for Hugging Face -> predict on
#   the export -> compare the export's scores with the checkpoint's (identical) and with an
#   independent float64 NumPy BERT (tests/reference/bert_numpy.py) -> fine-tune a small RoBERTa
#   (byte-level BPE) and a TwHIN-BERT-style model (Unigram) from Hugging Face directories ->
#   masked-LM pretraining on the posts' text, then fine-tuning on 5% of the labels from it and
#   from scratch (tests/cli/pretrain.sh): the pretrained encoder must win -> soft labels, identity
#   subgroups and temperature scaling (tests/cli/moderation.sh): the worst subgroup AUC above its
#   floor, calibration lowering the expected calibration error
#
# Bars (bench/baseline/nightly.json): quality floors on the final evaluation, modtrain against the
# baseline (macro PR-AUC not below it by more than the paired bootstrap sd of the difference), bitwise resume,
# export == checkpoint, reference agreement, and training throughput judged as a ratio measured in
# the same run: training samples/s over a fixed reference workload of the same shapes timed just
# before (scripts/nightly_reference.py), not below min_fraction of the ratio stored for this CPU
# model (bench/baseline/nightly.json, by_machine; another model's when this one has none, said so). Writes OUT/REPORT.md, OUT/report.json, OUT/plots/*.png
# and OUT/logs/; exit 0 when every bar holds, 1 otherwise.
#
# Usage: scripts/nightly.sh [--out DIR] [--update-baseline] [--binary PATH]
#   --update-baseline  store this run's ratio as this CPU model's baseline (after a deliberate change)
#   --binary PATH      use this modtrain instead of building (the ctest of this script uses it)
set -uo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
out=nightly update_baseline=0 binary=""
while [[ $# -gt 0 ]]; do
  case $1 in
    --out) out=$2; shift 2 ;;
    --update-baseline) update_baseline=1; shift ;;
    --binary) binary=$2; shift 2 ;;
    *) echo "usage: scripts/nightly.sh [--out DIR] [--update-baseline] [--binary PATH]" >&2; exit 2 ;;
  esac
done
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1

if [[ -z $binary ]]; then
  scripts/setup.sh > /dev/null || { echo "nightly: build failed (run scripts/setup.sh to see why)"; exit 1; }
  binary=$repo/build/modtrain
fi
if ! /usr/bin/python3 -c "import matplotlib, numpy" 2>/dev/null; then
  sudo=""; [[ $(id -u) -eq 0 ]] || sudo="sudo"
  $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends python3-matplotlib python3-numpy > /dev/null
fi
mt=$binary
rm -rf "$out"
mkdir -p "$out/logs"
out=$(cd "$out" && pwd)
work=$out/work
mkdir -p "$work"
checks=$out/checks.jsonl stages=$out/stages.jsonl
: > "$checks"
: > "$stages"

# stage NAME CMD...: runs a step with its output in logs/NAME.log, records its time and status.
failed_stage=""
stage() {
  local name=$1; shift
  local start=$(date +%s.%N)
  printf '%-16s ' "$name"
  "$@" > "$out/logs/$name.log" 2>&1
  local rc=$?
  local seconds=$(printf %.3f "$(echo "$(date +%s.%N) - $start" | bc)")
  printf '%6.1f s  %s\n' "$seconds" "$([[ $rc -eq 0 ]] && echo ok || echo "FAILED (exit $rc, logs/$name.log)")"
  echo "{\"stage\": \"$name\", \"seconds\": $seconds, \"exit\": $rc}" >> "$stages"
  [[ $rc -eq 0 ]] || { [[ -n $failed_stage ]] || failed_stage=$name; }
  return $rc
}
# check NAME OK(0|1) VALUE BAR DETAIL
check() { /usr/bin/python3 -c 'import json,sys; print(json.dumps({"name": sys.argv[1], "ok": sys.argv[2] == "1", "value": sys.argv[3], "bar": sys.argv[4], "detail": sys.argv[5]}))' "$@" >> "$checks"; }

cfg=(--config "$repo/configs/tiny.yaml" --set tokenizer.vocab=$work/vocab.txt --set data.prepared_dir=$work/prepared
     --set "data.train=[$work/data/train-*.jsonl]" --set "data.valid=[$work/data/valid-*.jsonl]")
np2=(mpirun -np 2 "$mt")
echo "nightly: $(git -C "$repo" rev-parse --short HEAD 2>/dev/null) on $(nproc) cores; logs in $out/logs"

run_all() {
  stage version "$mt" --version || return
  # The quickstart's data: the context task, realistic lengths (what the floors and the throughput
  # ratio in bench/baseline/nightly.json were measured on since the context task became the default).
  stage synth "$mt" data synth --out "$work/data" --train 100000 --valid 5000 --train-shards 4 || return
  stage tokenizer "$mt" tokenizer train --input "$work/data/train-*.jsonl" --vocab-size 4000 --out "$work/vocab.txt" || return
  stage prepare "$mt" data prepare "${cfg[@]}" || return
  # the fixed reference workload, timed just before training (the throughput verdict is their ratio)
  stage reference_workload bash -c "/usr/bin/python3 '$repo/scripts/nightly_reference.py' --ranks 2 --seconds 4 > '$work/reference.json'" || return
  stage train "${np2[@]}" train "${cfg[@]}" --set run.dir=$work/run || return
  stage eval bash -c "'$mt' eval --model '$work/run/model' --data '$work/data/valid-*.jsonl' --json > '$out/eval.json'" || return
  # The bag-of-words baseline on the same split, with modtrain's per-record scores on the same
  # bootstrap resamples (the noise of the difference); the ceiling is data/ceiling.json.
  stage baseline bash -c "cat '$work'/data/valid-*.jsonl > '$work/valid.jsonl' &&
    '$mt' predict --model '$work/run/model' --input '$work/valid.jsonl' --output '$work/valid_scores.jsonl' &&
    /usr/bin/python3 '$repo/bench/peer/tfidf_baseline.py' --train '$work/data/train-*.jsonl' --valid '$work/data/valid-*.jsonl' \
      --compare modtrain='$work/valid_scores.jsonl' --out '$out/baseline.json' && cp '$work/data/ceiling.json' '$out/ceiling.json'" || return

  # Kill -9 a run once its first checkpoint is on disk, resume it, compare with the same run
  # uninterrupted (600 steps: the resume path, not the quality, is what this checks).
  local short=(--set train.max_steps=600 --set checkpoint.every=200 --set eval.every=300)
  stage uninterrupted "${np2[@]}" train "${cfg[@]}" "${short[@]}" --set run.dir=$work/uninterrupted || return
  stage kill_resume bash -c "
    ${np2[*]} train ${cfg[*]} ${short[*]} --set run.dir=$work/resumed > '$out/logs/kill_resume.first.log' 2>&1 &
    launcher=\$!
    for _ in \$(seq 600); do [[ -f $work/resumed/checkpoints/latest ]] && break; sleep 0.1; done
    [[ -f $work/resumed/checkpoints/latest ]] || { echo 'no checkpoint appeared'; exit 1; }
    echo \"killing the ranks (SIGKILL) after \$(cat $work/resumed/checkpoints/latest)\"
    pkill -KILL -P \$launcher; wait \$launcher
    ${np2[*]} train ${cfg[*]} ${short[*]} --set run.dir=$work/resumed --resume auto" || return
  if cmp -s "$work/uninterrupted/model/model.safetensors" "$work/resumed/model/model.safetensors"; then
    check resume_exact 1 "bitwise identical" "bitwise identical" "$(grep -o 'resumed from [^ ]* at step [0-9]*' "$out/logs/kill_resume.log")"
  else
    check resume_exact 0 "weights differ" "bitwise identical" "the killed-and-resumed run ended with other weights than the uninterrupted one"
  fi

  stage export "$mt" export --checkpoint "$work/run/model" --out "$work/hf" || return
  /usr/bin/python3 -c '
import json, sys
with open(sys.argv[1]) as f:
    for i, line in enumerate(f):
        if i >= 200: break
        print(json.loads(line)["text"].replace("\n", " "))' "$work/data/valid-00000.jsonl" > "$work/texts.txt"
  stage predict "$mt" predict --model "$work/hf" --input "$work/texts.txt" --output "$work/pred_export.jsonl" || return
  stage predict_ckpt "$mt" predict --model "$work/run/model" --input "$work/texts.txt" --output "$work/pred_ckpt.jsonl" || return
  stage reference bash -c "'$mt' tokenize --vocab '$work/hf/vocab.txt' --tweets --max-len 64 < '$work/texts.txt' > '$work/ids.jsonl' &&
    /usr/bin/python3 '$repo/tests/reference/bert_numpy.py' '$work/hf' '$work/ids.jsonl' > '$work/ref_logits.jsonl'" || return

  # The pretrained families besides BERT: a small RoBERTa (byte-level BPE) and a TwHIN-BERT-style
  # relative_key BERT with XLM-R's Unigram tokenizer, each a Hugging Face directory fine-tuned on
  # multilingual posts on 2 ranks, exported, predicted, checked against the NumPy reference and
  # imported again (tests/cli/families.sh).
  local family
  for family in roberta twhin; do
    if stage finetune_$family bash "$repo/tests/cli/families.sh" "$mt" "$repo" $family; then
      check finetune_$family 1 "ok" "ok" "$(grep -o 'max |p_modtrain - p_reference| = [^ ]*' "$out/logs/finetune_$family.log")"
    else
      check finetune_$family 0 "failed" "ok" "see logs/finetune_$family.log"
    fi
  done

  # Domain-adaptive pretraining: MLM on 20k unlabelled posts (2 ranks), then a classifier on 5% of
  # the labels from it and from scratch; both macro PR-AUCs recorded (pretrain/pretrain.json).
  stage pretrain bash "$repo/tests/cli/pretrain.sh" "$mt" "$repo" "$out/pretrain"
  if [[ -s $out/pretrain/pretrain.json ]]; then
    local figures
    figures=$(/usr/bin/python3 -c 'import json,sys; p=json.load(open(sys.argv[1])); print("%.4f vs %.4f from scratch" % (p["macro_pr_auc_pretrained"], p["macro_pr_auc_scratch"]))' "$out/pretrain/pretrain.json")
    if grep -q "^pretrain ok" "$out/logs/pretrain.log"; then
      check pretrain_beats_scratch 1 "$figures" "pretrained > scratch + 0.03" "macro PR-AUC, 1000 labelled records, after MLM on 20000 posts"
    else
      check pretrain_beats_scratch 0 "$figures" "pretrained > scratch + 0.03" "see logs/pretrain.log"
    fi
  else
    check pretrain_beats_scratch 0 "not measured" "pretrained > scratch + 0.03" "see logs/pretrain.log"
  fi

  # Moderation-grade evaluation: soft labels from simulated annotators, identity subgroups (bias
  # metrics), temperature scaling and slices (tests/cli/moderation.sh); figures in moderation/.
  stage moderation bash "$repo/tests/cli/moderation.sh" "$mt" "$repo" "$out/moderation"
  grep -q "^moderation ok" "$out/logs/moderation.log" ||
    check moderation 0 "failed" "ok" "see logs/moderation.log"
}
run_all
[[ -z $failed_stage ]] || check "stage_$failed_stage" 0 "failed" "exit 0" "see logs/$failed_stage.log"

baseline=$repo/bench/baseline/nightly.json
/usr/bin/python3 "$repo/scripts/nightly_report.py" --out "$out" --work "$work" --baseline "$baseline" \
  --commit "$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)" $([[ $update_baseline -eq 1 ]] && echo --update-baseline)
