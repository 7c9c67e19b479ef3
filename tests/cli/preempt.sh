#!/usr/bin/env bash
# Preemption with real signals on a 2-rank mpirun job: SIGTERM to one rank (what Slurm sends to
# every task) and SIGUSR1 to mpirun (which forwards it to every rank). Either way all ranks
# finish the step, save a checkpoint and exit 0; the run then resumes from it. SIGUSR2 saves a
# checkpoint on demand without stopping.
# Usage: preempt.sh MODTRAIN REPO_DIR
set -euo pipefail
mt=$1 repo=$2
source "$(dirname "$0")/common.sh"
synth_data "$mt" 1000 100 1000
cfg=(--config "$repo/configs/tiny.yaml" --set tokenizer.vocab=vocab.txt --set data.prepared_dir=prep
     --set train.max_steps=100000 --set log.every=1 --set eval.every=0 --set checkpoint.every=0 --set dist.threads=1)
"$mt" data prepare "${cfg[@]}" > /dev/null

# Waits until RUN has logged step 3, so the signal arrives mid-training.
wait_for_steps() {
  for _ in $(seq 300); do
    grep -q '"step":3,' "$1/metrics.jsonl" 2>/dev/null && return 0
    sleep 0.1
  done
  fail "$1 did not reach step 3"
}
check_stopped() {  # RUN LOG RC
  [[ $3 -eq 0 ]] || { cat "$2"; fail "$1: exit code $3 after the signal, expected 0"; }
  grep -q "stop requested" "$2" || fail "$1: no 'stop requested' line"
  latest=$(cat "$1/checkpoints/latest")
  step=$((10#${latest#step-}))
  [[ $step -ge 3 && $step -lt 100000 ]] || fail "$1: checkpoint at step $step"
  grep -q "stopped after step $step of 100000" "$2" || fail "$1: stop message"
}

# SIGTERM to rank 1 only: the flag is summed over ranks, so rank 0 stops after the same step.
mpiexec --oversubscribe -np 2 "$mt" train "${cfg[@]}" --set run.dir=T > t.txt 2>&1 &
launcher=$!
wait_for_steps T
ranks=($(pgrep -P $launcher -f "modtrain train" || true))
[[ ${#ranks[@]} -eq 2 ]] || fail "expected 2 rank processes under mpiexec, found ${#ranks[@]}"
kill -TERM "${ranks[1]}"
set +e; timeout 60 tail --pid=$launcher -f /dev/null; wait $launcher; rc=$?; set -e
check_stopped T t.txt $rc

# SIGUSR2 to mpiexec (forwarded): a checkpoint on demand, and training goes on. Then SIGUSR1
# (forwarded too): stop.
mpiexec --oversubscribe -np 2 "$mt" train "${cfg[@]}" --set run.dir=U > u.txt 2>&1 &
launcher=$!
wait_for_steps U
kill -USR2 $launcher
for _ in $(seq 300); do [[ -f U/checkpoints/latest ]] && break; sleep 0.1; done
[[ -f U/checkpoints/latest ]] || fail "SIGUSR2 did not produce a checkpoint"
on_demand=$(cat U/checkpoints/latest)
kill -0 $launcher 2> /dev/null || fail "SIGUSR2 stopped the run; it should go on"
grep -q "checkpoint requested (SIGUSR2) after step" u.txt || fail "no 'checkpoint requested' line"
kill -USR1 $launcher
set +e; timeout 60 tail --pid=$launcher -f /dev/null; wait $launcher; rc=$?; set -e
check_stopped U u.txt $rc
[[ $latest != "$on_demand" ]] || fail "the stop should save a newer checkpoint than the on-demand one"

# The preempted run continues from its checkpoint.
mpiexec --oversubscribe -np 2 "$mt" train "${cfg[@]}" --set run.dir=U --resume auto --stop-after $((step + 2)) > r.txt 2>&1 ||
  { cat r.txt; fail "resume after preemption"; }
grep -q "resumed from U/checkpoints/step-$(printf %07d $step) at step $step" r.txt || fail "resume line"
grep -q "stopped after step $((step + 2))" r.txt || fail "resumed run did not continue"
echo "preemption ok"
