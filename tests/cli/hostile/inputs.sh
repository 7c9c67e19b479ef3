#!/usr/bin/env bash
# Hostile: inputs that are not what they seem. Special files (devices, FIFOs without a writer,
# /proc files, directories) as configs, vocabularies, pointer files and data never hang or read
# forever; misleading messages say what the path is and how to fix it.
# Usage: inputs.sh MODTRAIN REPO_DIR
set -euo pipefail
mt=$1 repo=$2
source "$(dirname "$0")/common.sh"
trained_model "$mt" "$repo"
mkfifo fifo

# configs: a device, a FIFO without a writer, a read error, a directory, a second YAML document
expect_error 2 "config file /dev/zero is a character device, not a regular file" -- "$mt" config check --config /dev/zero
expect_error 2 "config file fifo is a FIFO \(named pipe\), not a regular file" -- "$mt" config check --config fifo
expect_error 2 "cannot read config file /proc/self/mem: Input/output error" -- "$mt" config check --config /proc/self/mem
expect_error 2 "config path is a directory" -- "$mt" config check --config data
printf 'run:\n  seed: 1\n---\ntrain:\n  lr: 0.1\n' > two.yaml
expect_error 2 "two.yaml:4:1: a second YAML document" -- "$mt" config check --config two.yaml
# integer ranges are the key's, not the storage type's
expect_error 2 "train.micro_batch = 99999999999 is out of range \(allowed: \[1, " -- "$mt" config check --set train.micro_batch=99999999999
! grep -q 2147483647 err.txt || fail "the message names int32's range"

# vocabularies and pointer files
expect_error 2 "vocab /dev/zero is a character device" -- "$mt" tokenize --vocab /dev/zero
expect_error 2 "vocab fifo is a FIFO" -- "$mt" tokenize --vocab fifo
cp -r run/model m && rm -f m/vocab.txt && ln -s /dev/zero m/vocab.txt
expect_error 2 "vocab .*m/vocab.txt is a character device" -- "$mt" predict --model m --input data/valid-00000.jsonl --output p.jsonl
# tokenizer.vocab a FIFO: prepare reads it, train's staleness check hashes it; neither may block
expect_error 2 "vocab fifo is a FIFO" -- "$mt" data prepare "${cfg[@]}" --set tokenizer.vocab=fifo
expect_error 2 "fifo.* a FIFO" -- "$mt" train "${cfg[@]}" --set tokenizer.vocab=fifo --set run.dir=run_fifo
# a model directory whose tokenizer.json is another model's type
cp -r run/model m2 && printf '{"model": {"type": "WordLevel", "vocab": {}}}' > m2/tokenizer.json
expect_error 2 "m2/tokenizer.json: model.type WordLevel is not a tokenizer modtrain has" -- "$mt" predict --model m2 --input data/valid-00000.jsonl --output p.jsonl
mkdir -p ck && ln -s "$PWD/fifo" ck/latest && mkdir -p ck/step-0000001
expect_error 2 "pointer file ck/latest is a FIFO" -- "$mt" predict --model ck/latest --input data/valid-00000.jsonl --output p.jsonl

# data paths: say what the path is
expect_error 2 "data is a directory, not a data file" -- "$mt" eval --model run/model --data data
expect_error 2 "/dev/null is a character device, not a data file" -- "$mt" predict --model run/model --input /dev/null --output p.jsonl
expect_error 2 "/proc/self/status: no file extension" -- "$mt" eval --model run/model --data /proc/self/status
# eval's hint names its own flag
printf '{"id": "a", "text": "ok", "labels": {"hate": 1}}\n{"id": "b", "text": \n' > bad.jsonl
expect_error 2 "bad.jsonl:2: .*use --on-bad-record skip" -- "$mt" eval --model run/model --data bad.jsonl
! grep -q "data.on_bad_record" err.txt || fail "eval's hint names the config key"

# paths under a file: one modtrain line, exit 2, no raw std::filesystem text
touch afile
expect_error 2 "afile/run.*Not a directory.*check the path" -- "$mt" train "${cfg[@]}" --set run.dir=afile/run
expect_error 2 "Not a directory" -- "$mt" data synth --out afile/data --train 10 --valid 10

# masked-LM pretraining (train.objective mlm): a tokenizer without a mask token, a .txt shard for a
# labelled run, an unlabelled run without the objective, an MLM model served or resumed as a classifier
grep -v '^\[MASK\]$' vocab.txt > vocab-nomask.txt
printf 'a post\nanother post\n' > posts.txt
mlm=(--set train.objective=mlm --set train.pos_weight=none --set 'data.labels=[]' --set 'data.train=[posts.txt]' --set 'data.valid=[]')
expect_error 2 "the wordpiece tokenizer has no mask token .*set tokenizer.vocab to a tokenizer that has it" -- \
  "$mt" train "${cfg[@]}" "${mlm[@]}" --set tokenizer.vocab=vocab-nomask.txt --set data.prepared_dir=prep_nomask --set run.dir=run_nomask
expect_error 2 "posts.txt: a .txt file is unlabelled text .* data.labels: \[\]" -- \
  "$mt" data prepare "${cfg[@]}" --set 'data.train=[posts.txt]' --set data.prepared_dir=prep_txt
expect_error 2 "data.labels is empty: a classifier needs its labels" -- "$mt" config check --set 'data.labels=[]'
"$mt" train "${cfg[@]}" "${mlm[@]}" --set data.prepared_dir=prep_mlm --set run.dir=run_mlm > mlm.txt 2>&1 || { cat mlm.txt; fail "tiny MLM run"; }
expect_error 2 "run_mlm/model is a masked-language model .*model.init_from: .*run_mlm/model" -- \
  "$mt" eval --model run_mlm/model --data data/valid-00000.jsonl
expect_error 2 "a checkpoint of train.objective mlm, but this run's is classify" -- "$mt" train "${cfg[@]}" --set run.dir=run_mlm --resume auto
expect_error 2 "a checkpoint of train.objective classify, but this run's is mlm; resume with the objective it was trained with" -- \
  "$mt" train "${cfg[@]}" "${mlm[@]}" --set data.prepared_dir=prep_mlm --set run.dir=run --resume auto

# a JSON number that overflows a double, even in an ignored key: one bad record (fail: file:line;
# skip: rejected and counted), never an abort, in prepare's worker threads and in eval alike
printf '{"text": "a post", "labels": [], "x": 1e400}\n{"text": "b post", "labels": ["hate"]}\n' > overflow.jsonl
expect_error 2 "overflow.jsonl:1: invalid JSON: number overflow parsing '1e400' \\(does not fit a double\\)" -- \
  "$mt" data prepare "${cfg[@]}" --set 'data.train=[overflow.jsonl]' --set 'data.valid=[]' --set data.prepared_dir=prep_overflow
"$mt" data prepare "${cfg[@]}" --set 'data.train=[overflow.jsonl]' --set 'data.valid=[]' --set data.prepared_dir=prep_overflow2 \
  --set data.on_bad_record=skip > overflow.txt 2>&1 || { cat overflow.txt; fail "prepare with skip and an overflowing number"; }
grep -q "2 input records = 1 kept + 1 rejected" overflow.txt || { cat overflow.txt; fail "the overflowing record is rejected and counted"; }
cases=$((cases + 1))
expect_error 2 "overflow.jsonl:1: invalid JSON: number overflow parsing '1e400'" -- "$mt" eval --model run/model --data overflow.jsonl

# tokenize --max-len: no silent acceptance of nonsense
expect_error 2 "--max-len 1 leaves no room for the special tokens" -- "$mt" tokenize --vocab vocab.txt --max-len 1
expect_error 2 "--max-len -5 is negative" -- "$mt" tokenize --vocab vocab.txt --max-len -5
echo "hostile inputs ok ($cases cases)"
