#!/usr/bin/env bash
# ZeRO-1 checkpoints with the real executable: each rank writes its own pieces of the optimiser
# state and every rank reads the pieces it needs, whatever wrote them, so a run saved with
# train.zero=1 on 3 ranks resumes on 2 ranks and then in one plain process with zero 0, and the
# reverse (zero 0 on 1 rank -> zero 1 on 2 -> on 3). Every checkpoint's index names the same tensors
# and shapes, each covered exactly once, and no rank wrote much more than its share.
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

# Whatever wrote it, the index describes the same tensors (names, shapes), every element of each
# exactly once, in pieces written by every rank, each rank about 1/N of the bytes (zero 0 and 1).
python3 - a/checkpoints/step-0000004:3 a/checkpoints/step-0000008:2 b/checkpoints/step-0000004:1 \
  b/checkpoints/step-0000008:2 a/checkpoints/step-0000012:1 b/checkpoints/step-0000012:3 <<'PY' ||
import json, math, sys
def index(arg):
    d, world = arg.split(":")
    return d, int(world), json.load(open(d + "/index.json"))
_, _, ref = index(sys.argv[1])
shapes = {k: v["shape"] for k, v in ref["tensors"].items()}
assert any(k.startswith("exp_avg.bert.embeddings.word_embeddings") for k in shapes), "no embedding moments"
compared = 0
for arg in sys.argv[1:]:
    d, world, ix = index(arg)
    assert ix["version"] == 2 and ix["optimizer"]["name"] == "adamw", (d, ix["optimizer"])
    assert ix["world"] == world, (d, ix["world"], world)
    assert {k: v["shape"] for k, v in ix["tensors"].items()} == shapes, d
    for name, t in ix["tensors"].items():
        at = 0
        for p in t["pieces"]:
            assert p["begin"] == at and p["end"] > at, (d, name, p)
            at = p["end"]
        assert at == math.prod(t["shape"]), (d, name, at)
        compared += 1
    files = {f: e for f, e in ix["files"].items() if f.startswith("optimizer.rank-")}
    assert sorted(e["rank"] for e in files.values()) == list(range(world)), (d, files)
    sizes = [e["bytes"] for e in files.values()]
    assert max(sizes) <= 1.3 * sum(sizes) / world + 4096, (d, sizes)
print("index layouts compared:", compared)
assert compared == 6 * len(shapes)
PY
  fail "the checkpoints' indexes differ in layout between zero 0 and zero 1, or a rank wrote more than its share"
echo "zero resume ok"
