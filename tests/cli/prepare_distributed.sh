#!/usr/bin/env bash
# Distributed prepare: `mpirun -np N modtrain data prepare` writes byte for byte what one process
# writes (every shard, manifest.json, rejected.jsonl) at 2 and 3 ranks, with files cut into chunks
# at line ends (data.shard_bytes), bad records skipped and counted, a CSV file read whole, and at
# 4 ranks for 3 whole files (a rank with nothing to prepare). `train` under data.prepare: auto on
# 2 ranks prepares the same way. Then the failures: ranks that see different files, a rank that
# cannot find its files, a rank killed mid-prepare, two prepares at once, a shard gone before
# train: each exits non-zero with one line, and the prepared directory before it stays intact.
# Usage: prepare_distributed.sh MODTRAIN REPO_DIR
set -euo pipefail
mt=$1 repo=$2
source "$(dirname "$0")/common.sh"
synth_data "$mt" 6000 600 1500
# Bad records inside a file (not at its end): a line of non-JSON every 700 lines, a blank line
# every 900; a CSV copy of the validation file, read whole.
awk '{print} NR % 700 == 0 {print "not json at all"} NR % 900 == 0 {print ""}' data/train-00001.jsonl > t && mv t data/train-00001.jsonl
python3 - <<'PY'
import csv, json
labels = ["hate", "harassment", "threat", "sexual", "self_harm", "spam", "misinformation"]
with open("data/valid-00000.jsonl") as f, open("data/valid-extra.csv", "w", newline="") as out:
    w = csv.writer(out)
    w.writerow(["id", "text"] + labels)
    for line in f:
        r = json.loads(line)
        w.writerow([r["id"] + "-csv", r["text"]] + [int(l in r["labels"]) for l in labels])
PY
cfg=(--config "$repo/configs/tiny.yaml" --set tokenizer.vocab=vocab.txt --set data.on_bad_record=skip
     --set 'data.valid=[data/valid-*.jsonl,data/valid-extra.csv]' --set data.shard_bytes=65536)
mpi=(mpiexec --oversubscribe)

compare() {  # compare DIR_A DIR_B: the same files, byte for byte; prints how many
  local a=$1 b=$2 n=0
  [ "$(cd "$a" && ls -A | sort)" = "$(cd "$b" && ls -A | sort)" ] ||
    fail "$b holds other files than $a: $(diff <(cd "$a" && ls -A | sort) <(cd "$b" && ls -A | sort) | tr '\n' ' ')"
  for f in "$a"/*; do
    cmp -s "$f" "$b/$(basename "$f")" || fail "$b/$(basename "$f") differs from $a/$(basename "$f")"
    n=$((n + 1))
  done
  echo "$n"
}

"$mt" data prepare "${cfg[@]}" --set data.prepared_dir=p1 --threads 1 > p1.txt 2>&1 || { cat p1.txt; fail "one process"; }
shards=$(ls p1/train-*.bin | wc -l)
[ "$shards" -ge 12 ] || fail "data.shard_bytes=65536 should cut the train files into 12+ shards, got $shards"
grep -q '"source_range"' p1/manifest.json || fail "the manifest records no source ranges"
[ -s p1/rejected.jsonl ] || fail "the bad lines were not rejected"
for np in 2 3; do
  "${mpi[@]}" -np $np "$mt" data prepare "${cfg[@]}" --set data.prepared_dir=p$np --threads 1 > p$np.txt 2>&1 ||
    { cat p$np.txt; fail "$np ranks"; }
  n=$(compare p1 p$np)
  [ "$n" -ge $((shards + 4)) ] || fail "compared only $n files at $np ranks"
  grep '^train:\|^valid:' p1.txt > a.txt; grep '^train:\|^valid:' p$np.txt > b.txt
  cmp -s a.txt b.txt || fail "the accounting differs at $np ranks: $(cat b.txt)"
  echo "$np ranks: $n files identical to one process"
done
# input = kept + rejected, and every non-blank line of the train files counted once
lines=$(cat data/train-*.jsonl | grep -cv '^$')
grep -q "^train: $lines input records = " p1.txt || fail "train should count $lines input records: $(grep '^train:' p1.txt)"

# Whole files (data.shard_bytes 0): 4 ranks, 4 train files + 2 valid files = 6 chunks; 7 ranks leave one idle.
whole=("${cfg[@]}" --set data.shard_bytes=0)
"$mt" data prepare "${whole[@]}" --set data.prepared_dir=w1 --threads 1 > /dev/null 2>&1 || fail "whole files, one process"
"${mpi[@]}" -np 7 "$mt" data prepare "${whole[@]}" --set data.prepared_dir=w7 --threads 1 > w7.txt 2>&1 ||
  { cat w7.txt; fail "7 ranks for 6 chunks"; }
compare w1 w7 > /dev/null

# train under data.prepare: auto prepares on every rank, the same bytes.
"${mpi[@]}" -np 2 "$mt" train "${cfg[@]}" --set data.prepared_dir=pt --set run.dir=run --set train.max_steps=2 \
  --set train.warmup_steps=0 --set eval.every=0 --set dist.threads=1 > train.txt 2>&1 || { cat train.txt; fail "train with auto prepare"; }
grep -q "preparing pt again" train.txt || fail "train did not prepare: $(head -5 train.txt)"
compare p1 pt > /dev/null

# ---- failures: one line, non-zero, p2 as it was ----
before=$(cat p2/manifest.json p2/*.bin | sha256sum)
intact() { [ "$(cat p2/manifest.json p2/*.bin | sha256sum)" = "$before" ] || fail "$1 changed p2"; [ ! -e p2/.prepare-staging ] || [ "${2:-}" = killed ] || fail "$1 left p2/.prepare-staging"; }
mkdir -p other && cp -r data vocab.txt other/ && head -c 20000 data/train-00002.jsonl > other/data/train-00002.jsonl
with_other() {  # with_other OUT: rank 0 here, rank 1 in other/; sets rc
  set +e
  "${mpi[@]}" -np 1 "$mt" data prepare "${cfg[@]}" --set data.prepared_dir="$dir/p2" : -np 1 env -C "$dir/other" "$mt" \
    data prepare "${cfg[@]}" --set data.prepared_dir="$dir/p2" > "$1" 2>&1
  rc=$?
  set -e
}
with_other diff.txt
[ $rc -ne 0 ] && grep -q "rank 1 sees other raw files than rank 0" diff.txt || { cat diff.txt; fail "ranks seeing different files (rc $rc)"; }
intact "different files"
rm other/data/valid-*.jsonl
with_other missing.txt
[ $rc -eq 2 ] && grep -q "rank 1: data.valid: .* matches no file" missing.txt || { cat missing.txt; fail "a rank without its files (rc $rc)"; }
[ "$(grep -c 'error' missing.txt)" -eq 1 ] || { cat missing.txt; fail "a rank without its files: not one line"; }
intact "missing files"
set +e
"${mpi[@]}" -np 1 "$mt" data prepare "${cfg[@]}" --set data.prepared_dir=p2 : -np 1 env MODTRAIN_FAULT=prepare-chunk "$mt" data prepare \
  "${cfg[@]}" --set data.prepared_dir=p2 > killed.txt 2>&1
rc=$?
set -e
[ $rc -ne 0 ] || { cat killed.txt; fail "a rank killed mid-prepare: exit 0"; }
intact "a killed rank" killed
flock -o p2/.prepare.lock sleep 20 &  # -o: the lock stays with flock, which the kill ends
holder=$!
sleep 0.5
set +e
"$mt" data prepare "${cfg[@]}" --set data.prepared_dir=p2 > twice.txt 2>&1
rc=$?
set -e
kill $holder 2>/dev/null || true
[ $rc -eq 2 ] && grep -q "another preparation is writing p2" twice.txt || { cat twice.txt; fail "two prepares at once (rc $rc)"; }
intact "a second prepare" killed  # the killed run's staging is still there
# the killed run's staging goes with the next prepare, which still equals one process
"${mpi[@]}" -np 2 "$mt" data prepare "${cfg[@]}" --set data.prepared_dir=p2 --threads 1 > /dev/null 2>&1 || fail "prepare after a killed one"
[ ! -e p2/.prepare-staging ] || fail "the killed prepare's staging directory stayed"
compare p1 p2 > /dev/null
rm p2/train-00003.bin
set +e
"$mt" train "${cfg[@]}" --set data.prepared_dir=p2 --set data.prepare=check --set run.dir=run2 --set train.max_steps=1 --set train.warmup_steps=0 > gone.txt 2>&1
rc=$?
set -e
[ $rc -eq 2 ] && grep -q "train-00003.bin is missing" gone.txt || { cat gone.txt; fail "a shard gone before train (rc $rc)"; }
echo "prepare distributed ok"
