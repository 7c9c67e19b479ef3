#!/usr/bin/env bash
# ZeRO-1 checkpoints with the real executable: the optimiser state is stored whole, under parameter
# names, whatever the sharding, so a run saved with train.zero=1 on 3 ranks resumes on 2 ranks and
# then in one plain process with zero 0, and the reverse (zero 0 on 1 rank -> zero 1 on 2 -> on 3).
# Every checkpoint's optimizer.safetensors has the same tensor names and shapes as a zero 0 one.
# Usage: zero_resume.sh MODTRAIN REPO_DIR
set -euo pipefail
mt=$1 repo=$2
source "$(dirname "$0")/common.sh"
synth_data "$mt" 1500 100 1200
cfg=(--config "$repo/configs/tiny.yaml" --set tokenizer.vocab=vocab.txt --set data.prepared_dir=prep
     --set train.max_steps=12 --set train.warmup_steps=2 --set log.every=4 --set eval.every=0
     --set checkpoint.every=0 --set dist.threads=1 --set dist.bucket_mb=0.5 --set train.micro_batch=8
     --set data.valid=[])
"$mt" data prepare "${cfg[@]}" > /dev/null
np() { local n=$1; shift; mpiexec --oversubscribe -np "$n" "$mt" "$@"; }
step() {  # step LOG WHAT: the run succeeded and says it resumed where the last one stopped
  grep -q "$2" "$1" || { cat "$1"; fail "expected '$2' in $1"; }
}

# A: zero 1 on 3 ranks -> zero 1 on 2 ranks -> zero 0 in one process
np 3 train "${cfg[@]}" --set run.dir=a --set train.zero=1 --stop-after 4 > a1.txt 2>&1 || { cat a1.txt; fail "A: 3 ranks"; }
step a1.txt "ZeRO-1"
np 2 train "${cfg[@]}" --set run.dir=a --set train.zero=1 --resume auto --stop-after 8 > a2.txt 2>&1 ||
  { cat a2.txt; fail "A: resume on 2 ranks"; }
step a2.txt "resumed from .*step-0000004 at step 4 of 12"
"$mt" train "${cfg[@]}" --set run.dir=a --set train.zero=0 --resume auto > a3.txt 2>&1 || { cat a3.txt; fail "A: resume in one process"; }
step a3.txt "resumed from .*step-0000008 at step 8 of 12"
[[ -f a/model/model.safetensors ]] || fail "A: no final model"

# B: the reverse
"$mt" train "${cfg[@]}" --set run.dir=b --stop-after 4 > b1.txt 2>&1 || { cat b1.txt; fail "B: one process"; }
np 2 train "${cfg[@]}" --set run.dir=b --set train.zero=1 --resume auto --stop-after 8 > b2.txt 2>&1 ||
  { cat b2.txt; fail "B: resume on 2 ranks with zero 1"; }
step b2.txt "resumed from .*step-0000004 at step 4 of 12"
np 3 train "${cfg[@]}" --set run.dir=b --set train.zero=1 --resume auto > b3.txt 2>&1 || { cat b3.txt; fail "B: resume on 3 ranks"; }
step b3.txt "resumed from .*step-0000008 at step 8 of 12"
[[ -f b/model/model.safetensors ]] || fail "B: no final model"

# The stored state is the same shape whatever wrote it: names, shapes and one step count.
python3 - a/checkpoints/step-0000004 a/checkpoints/step-0000008 b/checkpoints/step-0000004 b/checkpoints/step-0000008 <<'PY' ||
import json, struct, sys
def header(d):
    with open(d + "/optimizer.safetensors", "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        h = json.loads(f.read(n))
    meta = h.pop("__metadata__")
    return meta, {k: v["shape"] for k, v in h.items()}
ref_meta, ref = header(sys.argv[1])
assert ref_meta.get("optimizer") == "adamw", ref_meta
assert any(k.startswith("exp_avg.bert.embeddings.word_embeddings") for k in ref), "no embedding moments"
for d in sys.argv[2:]:
    meta, shapes = header(d)
    assert shapes == ref, (d, set(shapes) ^ set(ref))
    assert meta.get("optimizer") == "adamw", (d, meta)
PY
  fail "optimizer.safetensors differs in layout between zero 0 and zero 1 checkpoints"
echo "zero resume ok"
