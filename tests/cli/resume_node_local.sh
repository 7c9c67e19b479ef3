#!/usr/bin/env bash
# Node-local scratch (README: launching on a cluster): rank 1 runs in its own mount namespace where run.dir/checkpoints
# (or run.dir) is an empty tmpfs (another node's scratch), with --resume auto. Rank 0 alone resolves the
# checkpoint, every rank loads what it chose: rank 1 cannot, and both ranks stop before the first
# step with one error line naming the path and the host, writing nothing. The same for
# model.init_from hidden from rank 1. Then the shared-storage case still resumes.
# Usage: resume_node_local.sh MODTRAIN REPO_DIR
set -euo pipefail
mt=$1 repo=$2
source "$(dirname "$0")/common.sh"
unshare -m --propagation private true 2>/dev/null || fail "this test needs mount namespaces (run as root)"
synth_data "$mt" 600 100 800
cfg=(--config "$repo/configs/tiny.yaml" --set tokenizer.vocab=vocab.txt --set data.prepared_dir=prep
     --set train.max_steps=8 --set train.warmup_steps=1 --set log.every=2 --set eval.every=0
     --set checkpoint.every=4 --set dist.threads=1 --set train.micro_batch=8 --set data.valid=[])
"$mt" data prepare "${cfg[@]}" > /dev/null
# hidden DIR: rank 1 sees an empty tmpfs at DIR (its own mount namespace); rank 0 sees the real one.
hidden() {
  local dir=$1; shift
  mpiexec --oversubscribe -np 1 "$mt" "$@" : -np 1 \
    unshare -m --propagation private sh -c 'mount -t tmpfs none "$0" && exec "$@"' "$dir" "$mt" "$@"
}
errors() { grep -c "error:" "$1" || true; }

# 1. --resume auto with the checkpoints on rank 0's storage only.
mpiexec --oversubscribe -np 2 "$mt" train "${cfg[@]}" --set run.dir=run --stop-after 4 > first.txt 2>&1 ||
  { cat first.txt; fail "first run"; }
[[ $(cat run/checkpoints/latest) == step-0000004 ]] || fail "no step-0000004"
lines_before=$(wc -l < run/metrics.jsonl)
rc=0
hidden "$PWD/run/checkpoints" train "${cfg[@]}" --set run.dir=run --resume auto > local.txt 2>&1 || rc=$?
[[ $rc -ne 0 ]] || { cat local.txt; fail "a rank that cannot see the checkpoint must stop the job"; }
[[ $(errors local.txt) -eq 1 ]] || { cat local.txt; fail "expected one error line, got $(errors local.txt)"; }
grep -Eq "\[rank 1\] error: cannot load checkpoint .*run/checkpoints/step-0000004 \(rank 0 resumes from it\) on host $(hostname)" local.txt ||
  { cat local.txt; fail "the error must name the checkpoint, rank 1 and its host"; }
grep -q "every rank must see the same files" local.txt || { cat local.txt; fail "the error must say how to fix it"; }
grep -q "starting fresh" local.txt && { cat local.txt; fail "no rank may start fresh"; }
[[ $(wc -l < run/metrics.jsonl) -eq $lines_before ]] || { tail -3 run/metrics.jsonl; fail "a step ran or an event was written"; }
[[ $(cat run/checkpoints/latest) == step-0000004 ]] || fail "a checkpoint was written"

# 2. model.init_from visible to rank 0 only: the same, for the pretrained weights.
mpiexec --oversubscribe -np 1 "$mt" train "${cfg[@]}" --set run.dir=src --set train.max_steps=2 > src.txt 2>&1 ||
  { cat src.txt; fail "source run"; }
"$mt" export --checkpoint src/model --out hf > /dev/null 2>&1 || fail "export"
rc=0
hidden "$PWD/hf" train "${cfg[@]}" --set run.dir=ft --set model.init_from=hf > init.txt 2>&1 || rc=$?
[[ $rc -ne 0 ]] || { cat init.txt; fail "a rank that cannot read model.init_from must stop the job"; }
[[ $(errors init.txt) -eq 1 ]] || { cat init.txt; fail "init_from: expected one error line, got $(errors init.txt)"; }
grep -Eq "\[rank 1\] error: cannot load model.init_from hf on host $(hostname) \(rank\(s\) 0 did\)" init.txt ||
  { cat init.txt; fail "the init_from error must name the path, rank 1 and its host"; }
[[ ! -e ft/checkpoints/latest ]] || fail "init_from: a checkpoint was written"

# 3. run.dir itself node-local: found at start, before any step, naming the rank and both hosts.
mkdir -p nl
rc=0
hidden "$PWD/nl" train "${cfg[@]}" --set run.dir=nl > nl.txt 2>&1 || rc=$?
[[ $rc -eq 2 ]] || { cat nl.txt; fail "a node-local run.dir must stop the job at start with exit 2 (got $rc)"; }
[[ $(errors nl.txt) -eq 1 ]] || { cat nl.txt; fail "node-local run.dir: expected one error line, got $(errors nl.txt)"; }
grep -Eq "error: run.dir nl is not the same directory on every rank: rank 1 on host $(hostname) does not see the .run-id file rank 0 wrote there \(rank 0 is on host $(hostname)\); .*put run.dir on storage shared by all nodes" nl.txt ||
  { cat nl.txt; fail "the node-local run.dir error must name rank 1, the hosts and the fix"; }
[[ ! -e nl/metrics.jsonl ]] || fail "node-local run.dir: a step ran"

# 4. Only run.dir/checkpoints node-local, from a fresh start: the first save cannot be committed
#    (rank 1's file is on its own scratch), `latest` is never written, one line names rank 1.
rc=0
mkdir -p cl/checkpoints
hidden "$PWD/cl/checkpoints" train "${cfg[@]}" --set run.dir=cl > cl.txt 2>&1 || rc=$?
[[ $rc -ne 0 ]] || { cat cl.txt; fail "a checkpoint rank 0 cannot see whole must not be committed"; }
grep -Eq "error: cannot write checkpoint .*cl/checkpoints/step-0000004: rank 0 failed to commit it: rank 1 wrote optimizer.rank-00001.safetensors, but it is not in .*cl/checkpoints/.tmp-step-0000004 as rank 0 sees it \(is run.dir the same directory on every node\?\)" cl.txt ||
  { cat cl.txt; fail "the commit error must name rank 1's file and the fix"; }
[[ $(errors cl.txt) -eq 1 ]] || { cat cl.txt; fail "commit failure: expected one error line, got $(errors cl.txt)"; }
[[ ! -e cl/checkpoints/latest ]] || fail "latest was written for an incomplete checkpoint"

# 5. Shared storage (the normal case): the same resume works, from the step rank 0 chose.
mpiexec --oversubscribe -np 2 "$mt" train "${cfg[@]}" --set run.dir=run --resume auto > shared.txt 2>&1 ||
  { cat shared.txt; fail "resume on shared storage"; }
grep -q "resumed from .*step-0000004 at step 4 of 8" shared.txt || { cat shared.txt; fail "did not resume at step 4"; }
echo "node-local resume ok"
