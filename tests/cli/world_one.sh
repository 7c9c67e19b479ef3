#!/usr/bin/env bash
# The multi-rank path at world size 1 with the real executable, as the one GPU of a check machine
# runs it with NCCL (scripts/gpu/check.sh): `mpiexec -np 1 modtrain train --set dist.backend=mpi`
# runs the bucketed reducer, the start-up broadcast, the request flags, log sums, distributed
# evaluation, replica checks and checkpoint acknowledgements, then --stop-after and --resume auto
# through all of them; its model equals the plain process's byte for byte.
# Usage: world_one.sh MODTRAIN REPO_DIR
set -euo pipefail
mt=$1 repo=$2
source "$(dirname "$0")/common.sh"
synth_data "$mt" 2000 300 1500
cfg=(--config "$repo/configs/tiny.yaml" --set tokenizer.vocab=vocab.txt --set data.prepared_dir=prep
     --set train.max_steps=20 --set train.warmup_steps=4 --set log.every=5 --set eval.every=10
     --set checkpoint.every=10 --set dist.check_replicas_every=5 --set dist.threads=1 --set dist.bucket_mb=0.1)
"$mt" data prepare "${cfg[@]}" > /dev/null
np1=(mpiexec --oversubscribe -np 1 "$mt")

"$mt" train "${cfg[@]}" --set run.dir=plain > plain.txt 2>&1 || { cat plain.txt; fail "plain run"; }
grep -q "; one process$" plain.txt || fail "the plain run should say 'one process': $(grep '^train:' plain.txt)"

"${np1[@]}" train "${cfg[@]}" --set run.dir=dp --set dist.backend=mpi --set dist.timeline=dp/timeline.json > dp.txt 2>&1 ||
  { cat dp.txt; fail "dist.backend=mpi at -np 1"; }
grep -q "on 1 rank(s).*; data parallel, gradients over mpi$" dp.txt || fail "start line: $(grep 'train:' dp.txt)"
cmp -s plain/model/model.safetensors dp/model/model.safetensors || fail "dist.backend=mpi at -np 1 differs from the plain run"
cmp -s plain/model/modtrain.json dp/model/modtrain.json || fail "thresholds differ from the plain run"
python3 - <<'PY' || fail "timeline: a collective of the multi-rank path did not run"
import json
names = [e["name"] for e in json.load(open("dp/timeline-rank0.json"))["traceEvents"] if e.get("tid") == 1]
def count(what): return sum(what in n for n in names)
expected = {"broadcast of initial": 1, "all_reduce of gradient bucket": 20, "sum of stop and save requests": 20,
            "sum of logged training values": 4, "gather to rank 0 of evaluation scores": 4, "broadcast of evaluation figures": 2, "all_gather of replica check": 8,
            "all_gather of checkpoint written by every rank": 2, "all_gather of checkpoint committed by rank 0": 2}
missing = {k: count(k) for k, v in expected.items() if count(k) < v}
assert not missing, missing
PY

# ZeRO-1 at -np 1: reduce-scatter, sharded update and all-gather over one rank: the same bytes again
"${np1[@]}" train "${cfg[@]}" --set run.dir=zero --set dist.backend=mpi --set train.zero=1 --set dist.timeline=zero/timeline.json > zero.txt 2>&1 ||
  { cat zero.txt; fail "train.zero=1 at -np 1"; }
grep -q "gradients over mpi, ZeRO-1" zero.txt || fail "start line: $(grep 'train:' zero.txt)"
cmp -s plain/model/model.safetensors zero/model/model.safetensors || fail "train.zero=1 at -np 1 differs from the plain run"
python3 - <<'PY' || fail "timeline: a ZeRO-1 collective did not run"
import json
names = [e["name"] for e in json.load(open("zero/timeline-rank0.json"))["traceEvents"] if e.get("tid") == 1]
def count(what): return sum(what in n for n in names)
assert count("reduce_scatter of gradient bucket") >= 20 and count("all_gather of updated parameters") >= 20, names[:20]
assert count("all_reduce of squared gradient norm") == 20 and count("all_reduce of gradient bucket") == 0
PY

# stop at step 10, resume on the same path: the same bytes as the uninterrupted runs
"${np1[@]}" train "${cfg[@]}" --set run.dir=split --set dist.backend=mpi --stop-after 10 > s1.txt 2>&1 || { cat s1.txt; fail "stop-after"; }
"${np1[@]}" train "${cfg[@]}" --set run.dir=split --set dist.backend=mpi --resume auto > s2.txt 2>&1 || { cat s2.txt; fail "resume"; }
grep -q "resumed from .*step-0000010 at step 10 of 20" s2.txt || fail "resume line: $(cat s2.txt)"
cmp -s plain/model/model.safetensors split/model/model.safetensors || fail "stop + resume at -np 1 differs from the whole run"
echo "world size 1 ok"
