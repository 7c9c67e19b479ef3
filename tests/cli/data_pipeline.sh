#!/usr/bin/env bash
# The data commands end to end with the real executable: synth -> tokenizer train (determinism
# across thread counts) -> data prepare (exact accounting, bad records under both policies) ->
# data stats.  Usage: data_pipeline.sh MODTRAIN REPO_DIR
set -euo pipefail
mt=$1 repo=$2
dir=$(mktemp -d); trap 'rm -rf "$dir"' EXIT
cd "$dir"
fail() { echo "FAIL: $*"; exit 1; }

"$mt" data synth --out data --train 3000 --valid 300 --train-shards 3 | tee synth.txt
grep -q "wrote 3300 synthetic tweets (task context) to 4 files" synth.txt || fail "synth summary"
grep -qE "^ceiling \(Bayes-optimal scores on the validation split\): macro PR-AUC 0\.[0-9]{4}, ROC-AUC 0\.[0-9]{4}" synth.txt || fail "synth ceiling"
[[ $(wc -l < data/bayes-valid.jsonl) -eq 300 ]] || fail "bayes-valid.jsonl: one line per validation record"
"$mt" tokenizer train --input 'data/train-*.jsonl' --vocab-size 1500 --out vocab.txt --threads 1
"$mt" tokenizer train --input 'data/train-*.jsonl' --vocab-size 1500 --out vocab2.txt --threads 2
cmp vocab.txt vocab2.txt || fail "vocab training differs between 1 and 2 threads"
[[ "$(head -5 vocab.txt | tr '\n' ' ')" == "[PAD] [UNK] [CLS] [SEP] [MASK] " ]] || fail "special tokens not at ids 0-4"

cfg=(--config "$repo/configs/tiny.yaml" --set tokenizer.vocab=vocab.txt --set data.prepared_dir=prep)
"$mt" data prepare "${cfg[@]}" | tee prepare.txt
grep -q "train: 3000 input records = 3000 kept + 0 rejected (3 shards" prepare.txt || fail "prepare summary (train)"
grep -q "valid: 300 input records = 300 kept + 0 rejected" prepare.txt || fail "prepare summary (valid)"
"$mt" data stats prep | tee stats.txt
grep -q "train: 3000 records in 3 shards" stats.txt || fail "stats"
"$mt" data stats prep --json > stats.json
python3 -c "import json,sys; s=json.load(open('stats.json')); assert s['train']['records']==3000 and s['valid']['records']==300" ||
  fail "stats --json"

# A broken record: `fail` names file:line and exits non-zero; `skip` accounts for it.
sed -i '2a {"text": "broken' data/train-00001.jsonl
set +e
"$mt" data prepare "${cfg[@]}" > bad.txt 2>&1
rc=$?
set -e
cat bad.txt
[[ $rc -ne 0 ]] || fail "prepare should fail on a bad record"
grep -q "error: data/train-00001.jsonl:3: invalid JSON" bad.txt || fail "bad record location"
[[ $(grep -c "error:" bad.txt) -eq 1 ]] || fail "one error line"
"$mt" data prepare "${cfg[@]}" --set data.on_bad_record=skip | tee skip.txt
grep -q "train: 3001 input records = 3000 kept + 1 rejected" skip.txt || fail "skip accounting"
[[ $(wc -l < prep/rejected.jsonl) -eq 1 ]] || fail "rejected.jsonl"
grep -q '"line":3' prep/rejected.jsonl || fail "rejected line number"

# Prepared with another vocabulary: opening it is a clear error.
"$mt" data stats prep > /dev/null
echo "data pipeline ok"
