#!/usr/bin/env bash
# Sharded, asynchronous checkpoints with the real executable (docs/checkpoints.md):
#  - the single-file checkpoint an earlier modtrain wrote (tests/fixtures/checkpoint-v1) resumes
#    with today's code and the run ends bit for bit as an uninterrupted run;
#  - kill -9 of ONE rank of 2 at a random moment of a run that saves every 2 steps in the
#    background (each save widened by 200 ms, so most kills land inside one), KILLS times (CI: 3; the nightly: 20), and at each named point of a save (rank 1
#    before it writes, rank 0 before the rename, rank 0 before `latest` moves): `--resume auto`
#    always finds a complete checkpoint and the run ends bit for bit as the uninterrupted one;
#  - a full disk on rank 1 during a background write: one line naming rank 1, `latest` unchanged,
#    no partial directory left, and the run resumes exactly;
#  - a damaged checkpoint (a missing, truncated or altered piece file, an altered model, a broken or
#    newer index): one line naming the file and the rank that wrote it.
# Usage: checkpoint_sharded.sh MODTRAIN REPO_DIR [KILLS]
set -euo pipefail
mt=$1 repo=$2 kills=${3:-3}
source "$(dirname "$0")/hostile/common.sh"
np2=(mpiexec --oversubscribe -np 2 -x MODTRAIN_FAULT "$mt")
export MODTRAIN_FAULT=""

# ---- format 1 still loads: the fixture resumes and ends as an uninterrupted run ----
fx=$repo/tests/fixtures/checkpoint-v1
[[ -f $fx/step-0000004/optimizer.safetensors && ! -e $fx/step-0000004/index.json ]] || fail "the fixture is not format 1"
mkdir f && cp -r "$fx/data" "$fx/vocab.txt" "$fx/tiny.yaml" f/
(
  cd f
  fcfg=(--config tiny.yaml --set log.level=warn)
  "$mt" data prepare "${fcfg[@]}" > /dev/null
  "$mt" train "${fcfg[@]}" --set run.dir=U > u.txt 2>&1 || { cat u.txt; fail "fixture: the uninterrupted run"; }
  mkdir -p V/checkpoints && cp -r "$fx/step-0000004" V/checkpoints/ && echo step-0000004 > V/checkpoints/latest
  "$mt" train "${fcfg[@]}" --set run.dir=V --set log.level=info --resume auto > v.txt 2>&1 || { cat v.txt; fail "fixture: resume"; }
  grep -q "resumed from V/checkpoints/step-0000004 at step 4 of 8" v.txt || fail "fixture: resume line"
  # Bit for bit where this machine's kernels round as the fixture's did (its step 4 reproduces the
  # fixture's weights exactly); on a CPU whose kernels round differently (another vector width),
  # the two runs start from states 1e-9 apart, so they are compared within 1e-6 instead, said so.
  if cmp -s U/checkpoints/step-0000004/model.safetensors "$fx/step-0000004/model.safetensors"; then
    cmp U/model/model.safetensors V/model/model.safetensors || fail "fixture: resumed weights differ from the uninterrupted run"
  else
    python3 - U/model/model.safetensors V/model/model.safetensors <<'PY' || fail "fixture: resumed weights differ from the uninterrupted run"
import json, struct, sys
from array import array
def tensors(path):
    b = open(path, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    h = json.loads(b[8:8 + n])
    return {k: array("f", b[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]]) for k, v in h.items() if k != "__metadata__"}
u, v = tensors(sys.argv[1]), tensors(sys.argv[2])
assert u.keys() == v.keys() and len(u) > 10, (len(u), len(v))
worst = max(max(abs(a - b) for a, b in zip(u[k], v[k])) for k in u)
print(f"fixture: this CPU rounds unlike the fixture's (step 4 differs by ~1e-9); resumed run within {worst:.1e} of the uninterrupted one over {len(u)} tensors")
assert worst <= 1e-6, worst
PY
  fi
  [[ -f V/checkpoints/step-0000008/index.json ]] || fail "fixture: the resumed run did not write format 2"
)
echo "format 1 fixture: resumed, equal to the uninterrupted run"

# ---- the reference run on 2 ranks ----
synth_data "$mt" 1500 100 1200
cfg=(--config "$repo/configs/tiny.yaml" --set tokenizer.vocab=vocab.txt --set data.prepared_dir=prep
     --set train.max_steps=40 --set train.warmup_steps=4 --set log.every=10 --set eval.every=0
     --set data.valid=[] --set checkpoint.every=2 --set checkpoint.keep_last=2 --set dist.threads=1
     --set train.micro_batch=16)
"$mt" data prepare "${cfg[@]}" > /dev/null
"${np2[@]}" train "${cfg[@]}" --set run.dir=ref > ref.txt 2>&1 || { cat ref.txt; fail "the reference run"; }
grep -q "training waited .* in the background" ref.txt || fail "no asynchronous checkpoint line: $(grep checkpoint ref.txt | head -2)"
same_as_ref() { cmp ref/model/model.safetensors "$1/model/model.safetensors" || fail "$2: weights differ from the uninterrupted run"; }
complete_latest() {  # the checkpoint `latest` names (if any) is complete
  [[ -f $1/checkpoints/latest ]] || return 0
  local latest
  latest=$(cat "$1/checkpoints/latest")
  [[ -f $1/checkpoints/$latest/index.json ]] || fail "$2: latest names $latest, which is incomplete"
}

# ---- kill -9 of one rank at random moments ----
hits=0 mid_save=0
for attempt in $(seq 1 "$kills"); do
  rm -rf K
  # every save takes 200 ms longer (MODTRAIN_FAULT=checkpoint-write:slow), so most kills land inside one
  MODTRAIN_FAULT=checkpoint-write:slow "${np2[@]}" train "${cfg[@]}" --set run.dir=K > k.txt 2>&1 &
  launcher=$!
  sleep "$(( RANDOM % 25 / 10 + 1 )).$(( RANDOM % 10 ))"
  mapfile -t ranks < <(pgrep -P $launcher || true)
  [[ ${#ranks[@]} -gt 0 ]] && kill -KILL "${ranks[RANDOM % ${#ranks[@]}]}" 2> /dev/null || true
  wait $launcher || true
  complete_latest K "kill $attempt"
  ls -a K/checkpoints 2> /dev/null | grep -q '^\.tmp-step' && mid_save=$((mid_save + 1))
  [[ -f K/checkpoints/latest ]] && hits=$((hits + 1))
  "${np2[@]}" train "${cfg[@]}" --set run.dir=K --resume auto > k2.txt 2>&1 || { cat k2.txt; fail "resume after kill $attempt"; }
  same_as_ref K "kill $attempt ($(grep -o 'resumed from [^ ]* at step [0-9]*' k2.txt || echo 'from the start'))"
done
echo "random kills: $kills, $hits after a checkpoint existed, $mid_save in the middle of a save; every resume ended as the uninterrupted run"
# (at 20 kills about 14 land inside a save; fewer than 5 means the kills no longer test saves)
[[ $kills -lt 10 || $mid_save -ge 5 ]] || fail "only $mid_save of $kills kills landed inside a save"

# ---- kill -9 at each named point of a save (the first save after a resume at step 10) ----
for point in checkpoint-write-rank1 checkpoint-before-rename checkpoint-before-latest; do
  rm -rf P
  "${np2[@]}" train "${cfg[@]}" --set run.dir=P --stop-after 10 > p1.txt 2>&1 || { cat p1.txt; fail "$point: first part"; }
  MODTRAIN_FAULT=$point "${np2[@]}" train "${cfg[@]}" --set run.dir=P --resume auto > p2.txt 2>&1 &&
    fail "the fault $point did not fire"
  [[ $(cat P/checkpoints/latest) == step-0000010 ]] || fail "$point: latest moved to $(cat P/checkpoints/latest)"
  complete_latest P "$point"
  "${np2[@]}" train "${cfg[@]}" --set run.dir=P --resume auto > p3.txt 2>&1 || { cat p3.txt; fail "resume after $point"; }
  grep -q "resumed from P/checkpoints/step-0000010 at step 10" p3.txt || fail "$point: resumed from the wrong checkpoint"
  same_as_ref P "$point"
  ! ls -a P/checkpoints | grep -q '^\.tmp' || fail "$point: a partial directory was left behind"
done
echo "named kill points: 3, each resumed from step 10 and ended as the uninterrupted run"

# ---- a full disk on rank 1 during a background write ----
rm -rf E
"${np2[@]}" train "${cfg[@]}" --set run.dir=E --stop-after 10 > e1.txt 2>&1 || { cat e1.txt; fail "disk full: first part"; }
MODTRAIN_FAULT=checkpoint-write-rank1:enospc expect_error 1 \
  "cannot write checkpoint E/checkpoints/step-0000012: rank 1 failed: .*No space left on device.*latest still names step-0000010" \
  -- "${np2[@]}" train "${cfg[@]}" --set run.dir=E --resume auto
[[ $(cat E/checkpoints/latest) == step-0000010 ]] || fail "disk full: latest moved"
! ls -a E/checkpoints | grep -q '^\.tmp' || fail "disk full: a partial directory was left: $(ls -a E/checkpoints)"
"${np2[@]}" train "${cfg[@]}" --set run.dir=E --resume auto > e3.txt 2>&1 || { cat e3.txt; fail "disk full: resume"; }
same_as_ref E "disk full on rank 1"
echo "disk full on rank 1: one line, latest kept, resumed exactly"

# ---- damaged checkpoints: one line naming the file and the rank that wrote it ----
ck=ref/checkpoints/step-0000040
damage() {  # damage KIND: a copy of $ck in D/ckpt with one defect
  rm -rf D && mkdir D && cp -r $ck D/ckpt
  python3 - "$1" D/ckpt <<'PY'
import json, os, sys
kind, d = sys.argv[1], sys.argv[2]
index = json.load(open(d + "/index.json"))
rank1 = "optimizer.rank-00001.safetensors"
def flip(path, offset):
    b = bytearray(open(path, "rb").read())
    b[offset] ^= 0x40
    open(path, "wb").write(b)
if kind == "missing":
    os.remove(d + "/" + rank1)
elif kind == "truncated":
    os.truncate(d + "/" + rank1, os.path.getsize(d + "/" + rank1) - 100)
elif kind == "piece":
    piece = next(p for t in index["tensors"].values() for p in t["pieces"] if p["file"] == rank1)
    flip(d + "/" + rank1, piece["offset"] + 4 * ((piece["end"] - piece["begin"]) // 2))
elif kind == "model":
    flip(d + "/model.safetensors", os.path.getsize(d + "/model.safetensors") - 8)
elif kind == "index":
    open(d + "/index.json", "w").write(json.dumps(index)[:500])
elif kind == "version":
    index["version"] = 3
    json.dump(index, open(d + "/index.json", "w"))
PY
}
resume_d=("$mt" train "${cfg[@]}" --set run.dir=D/run --resume D/ckpt)
damage missing
expect_error 2 "D/ckpt/index.json names optimizer.rank-00001.safetensors \(written by rank 1\), which is missing; the checkpoint is damaged" -- "${resume_d[@]}"
damage truncated
expect_error 2 "D/ckpt/optimizer.rank-00001.safetensors \(written by rank 1\) is [0-9]+ bytes, the index says [0-9]+ \(truncated" -- "${resume_d[@]}"
damage piece
expect_error 2 "D/ckpt/optimizer.rank-00001.safetensors \(written by rank 1\): piece exp_.*fails its checksum" -- "${resume_d[@]}"
damage model
expect_error 2 "D/ckpt/model.safetensors \(written by rank 0\) fails its checksum" -- "${resume_d[@]}"
damage index
expect_error 2 "D/ckpt/index.json: malformed checkpoint index" -- "${resume_d[@]}"
damage version
expect_error 2 "D/ckpt/index.json: checkpoint format 3 is not supported by this modtrain" -- "${resume_d[@]}"
# ... and on 2 ranks, where each rank reads only its half: still one line
damage piece
expect_error 2 "optimizer.rank-00001.safetensors \(written by rank 1\): piece exp_.*fails its checksum" -- \
  "${np2[@]}" train "${cfg[@]}" --set run.dir=D/run --resume D/ckpt
echo "checkpoint sharded ok ($cases cases)"
