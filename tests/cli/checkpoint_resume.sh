#!/usr/bin/env bash
# Checkpoints and exact resume with the real executable on 2 MPI ranks:
#  - a 40-step run writes step-NNNNNNN directories, `latest`, `best`, and prunes to keep_last + best;
#  - 20 steps (--stop-after) + resume + 20 steps ends with bitwise the weights and optimiser state
#    of the uninterrupted 40;
#  - a writer killed (SIGKILL) in the middle of a save, or between the rename and the `latest`
#    update, leaves the previous checkpoint loadable, and the resumed run is still exact;
#  (each rank writes its half of the optimiser state: optimizer.rank-0000{0,1}.safetensors)
#  - a checkpoint of another model shape is a one-line error; another world size resumes with a
#    warning about data order.
# Usage: checkpoint_resume.sh MODTRAIN REPO_DIR
set -euo pipefail
mt=$1 repo=$2
source "$(dirname "$0")/common.sh"
np2=(mpiexec --oversubscribe -np 2 -x MODTRAIN_FAULT "$mt")
export MODTRAIN_FAULT=""
synth_data "$mt" 2000 300 1500
cfg=(--config "$repo/configs/tiny.yaml" --set tokenizer.vocab=vocab.txt --set data.prepared_dir=prep
     --set train.max_steps=40 --set train.warmup_steps=4 --set log.every=10 --set eval.every=20
     --set checkpoint.every=10 --set checkpoint.keep_last=2 --set dist.threads=1)
"$mt" data prepare "${cfg[@]}" > /dev/null

# ---- the uninterrupted run ----
"${np2[@]}" train "${cfg[@]}" --set run.dir=A > a.txt 2>&1 || { cat a.txt; fail "run A"; }
ck=A/checkpoints
[[ $(cat $ck/latest) == step-0000040 ]] || fail "latest should name step-0000040, is $(cat $ck/latest)"
[[ -s $ck/best ]] || fail "no best pointer"
best=$(cat $ck/best)
ls $ck | grep -q '^step-0000010$' && fail "step-0000010 should be pruned (keep_last 2)"
ls $ck | grep -q '^step-0000030$' || fail "step-0000030 should be kept"
[[ -d $ck/$best ]] || fail "the best checkpoint $best was pruned"
for f in model.safetensors optimizer.rank-00000.safetensors optimizer.rank-00001.safetensors index.json trainer_state.json \
         config.yaml config.json modtrain.json vocab.txt; do
  [[ -s $ck/step-0000040/$f ]] || fail "step-0000040/$f missing"
done
grep -q '"step": 40' $ck/step-0000040/trainer_state.json || fail "trainer_state step"
grep -q '"event":"checkpoint"' A/metrics.jsonl || fail "checkpoint events in metrics.jsonl"
# A checkpoint is a model directory: predict reads it as is.
echo "you are all idiots" | "$mt" predict --model $ck/step-0000030 --input - --output - > pred.jsonl 2>/dev/null
grep -q '"scores"' pred.jsonl || fail "predict on a checkpoint directory"

# The pointer files work where a model directory is expected.
"$mt" export --checkpoint $ck/best --out best_hf > /dev/null || fail "export --checkpoint checkpoints/best"
cmp best_hf/model.safetensors $ck/$best/model.safetensors || fail "the export of checkpoints/best is not $best"
"$mt" eval --model $ck/latest --data 'data/valid-*.jsonl' --json > /dev/null 2>&1 || fail "eval --model checkpoints/latest"

# ---- 20 + resume + 20 == 40, bit for bit ----
"${np2[@]}" train "${cfg[@]}" --set run.dir=B --stop-after 20 > b1.txt 2>&1 || { cat b1.txt; fail "run B, first half"; }
grep -q "stopped after step 20 of 40" b1.txt || fail "--stop-after message"
[[ $(cat B/checkpoints/latest) == step-0000020 ]] || fail "B latest after --stop-after"
[[ -e B/model ]] && fail "a stopped run must not write the final model"
"${np2[@]}" train "${cfg[@]}" --set run.dir=B --resume auto > b2.txt 2>&1 || { cat b2.txt; fail "run B, resumed"; }
grep -q "resumed from B/checkpoints/step-0000020 at step 20 of 40" b2.txt || fail "resume line"
cmp A/model/model.safetensors B/model/model.safetensors || fail "resumed weights differ from the uninterrupted run"
for f in optimizer.rank-00000.safetensors optimizer.rank-00001.safetensors; do
  cmp A/checkpoints/step-0000040/$f B/checkpoints/step-0000040/$f || fail "resumed optimiser state differs ($f)"
done
cmp A/model/modtrain.json B/model/modtrain.json || fail "resumed thresholds differ"

# ---- killed in the middle of a save: the previous checkpoint stays; resume is still exact ----
for point in checkpoint-mid-save checkpoint-before-latest; do
  rm -rf C
  "${np2[@]}" train "${cfg[@]}" --set run.dir=C --stop-after 20 > /dev/null 2>&1 || fail "run C ($point)"
  set +e
  MODTRAIN_FAULT=$point "${np2[@]}" train "${cfg[@]}" --set run.dir=C --resume auto > c2.txt 2>&1
  rc=$?
  set -e
  [[ $rc -ne 0 ]] || fail "the fault $point did not kill the writer"
  [[ $(cat C/checkpoints/latest) == step-0000020 ]] || fail "$point: latest moved to $(cat C/checkpoints/latest)"
  [[ $point == checkpoint-mid-save ]] && { ls -a C/checkpoints | grep -q '^.tmp-step-0000030$' || fail "no partial .tmp dir: not killed mid-save"; }
  "${np2[@]}" train "${cfg[@]}" --set run.dir=C --resume auto > c3.txt 2>&1 || { cat c3.txt; fail "resume after $point"; }
  grep -q "resumed from C/checkpoints/step-0000020" c3.txt || fail "$point: resumed from the wrong checkpoint"
  cmp A/model/model.safetensors C/model/model.safetensors || fail "$point: weights differ after kill + resume"
  ls -a C/checkpoints | grep -q '^\.tmp' && fail "$point: a stale .tmp directory was left behind"
done

# ---- kill -9 at random moments of a run that saves every step: whatever moment it hits, the
#      run resumes from a complete checkpoint and still ends exactly as the uninterrupted one ----
every=("${cfg[@]}" --set checkpoint.every=1 --set run.dir=R)
for attempt in 1 2 3; do
  "${np2[@]}" train "${every[@]}" --resume auto > r$attempt.txt 2>&1 &
  launcher=$!
  sleep "$(( RANDOM % 20 / 10 + 1 )).$(( RANDOM % 10 ))"
  pkill -KILL -P $launcher || true
  wait $launcher || true
  [[ -f R/checkpoints/latest ]] || continue  # killed before the first save: nothing to check yet
  latest=$(cat R/checkpoints/latest)
  [[ -f R/checkpoints/$latest/index.json ]] || fail "attempt $attempt: latest names an incomplete $latest"
done
"${np2[@]}" train "${every[@]}" --resume auto > r-final.txt 2>&1 || { cat r-final.txt; fail "resume after random kills"; }
echo "random kills: $(grep -ho 'resumed from [^ ]* at step [0-9]*' r*.txt | tr '\n' ';')"
cmp A/model/model.safetensors R/model/model.safetensors || fail "weights differ after random kills + resume"

# ---- a checkpoint that does not fit; another world size ----
set +e
"$mt" train "${cfg[@]}" --set run.dir=D --set model.hidden=64 --set model.intermediate=256 --resume A/checkpoints/step-0000030 > d.txt 2>&1
rc=$?
set -e
[[ $rc -eq 2 ]] || { cat d.txt; fail "shape mismatch should exit 2, got $rc"; }
[[ $(grep -c "error:" d.txt) -eq 1 ]] || fail "one error line expected"
grep -q "error: A/checkpoints/step-0000030/model.safetensors: tensor 'bert.embeddings.word_embeddings.weight' has shape" d.txt ||
  fail "shape mismatch message"
"$mt" train "${cfg[@]}" --set run.dir=E --resume A/checkpoints/step-0000030 > e.txt 2>&1 || { cat e.txt; fail "resume on 1 rank"; }
grep -q "warning: .*written by 2 rank(s) x micro_batch 32, resuming on 1 x 32: the data order from here differs" e.txt ||
  fail "world-size warning"
echo "checkpoint/resume ok"
