#!/usr/bin/env bash
# Hostile: outputs. An output that is one of the inputs is refused; a failed run leaves the old
# output intact; write errors on standard output fail the command; data synth into a non-empty
# directory is refused unless --force. Usage: outputs.sh MODTRAIN REPO_DIR
set -euo pipefail
mt=$1 repo=$2
source "$(dirname "$0")/common.sh"
trained_model "$mt" "$repo"

# output onto input: the same file, through a link, for predict / tokenizer train / export / prepare
cp data/valid-00000.jsonl in.jsonl
before=$(sha256sum < in.jsonl)
expect_error 2 "--output in.jsonl is the same file as the input in.jsonl" -- "$mt" predict --model run/model --input in.jsonl --output in.jsonl
ln -s in.jsonl link.jsonl
expect_error 2 "--output link.jsonl is the same file as the input in.jsonl" -- "$mt" predict --model run/model --input in.jsonl --output link.jsonl
expect_error 2 "is the same file as the input .*model.safetensors" -- "$mt" predict --model run/model --input in.jsonl --output run/model/model.safetensors
[[ $(sha256sum < in.jsonl) == "$before" ]] || fail "the input was changed"
expect_error 2 "--out data/train-00000.jsonl is the same file as the input" -- "$mt" tokenizer train --input 'data/train-*.jsonl' --out data/train-00000.jsonl
expect_error 2 "--out run/model is the model directory being exported" -- "$mt" export --checkpoint run/model --out run/model
mkdir -p prep2 && cp data/train-00000.jsonl prep2/
expect_error 2 "is inside data.prepared_dir prep2" -- "$mt" data prepare "${cfg[@]}" --set data.prepared_dir=prep2 --set "data.train=[prep2/train-00000.jsonl]"
[[ -s prep2/train-00000.jsonl ]] || fail "prepare removed a raw file"

# a failed predict leaves the previous output as it was, and no temporary file beside it
expect_ok -- "$mt" predict --model run/model --input in.jsonl --output pred.jsonl
good=$(sha256sum < pred.jsonl)
{ head -5 in.jsonl; echo '{"id": "x", "text": '; } > broken.jsonl
expect_error 2 "broken.jsonl:6: .*use --on-bad-record skip" -- "$mt" predict --model run/model --input broken.jsonl --output pred.jsonl
[[ $(sha256sum < pred.jsonl) == "$good" ]] || fail "a failed predict changed its earlier output"
! ls pred.jsonl.tmp.* > /dev/null 2>&1 || fail "a temporary output was left behind"

# write errors on standard output (a full disk) are errors, for every command that prints its product
expect_error 1 "cannot write standard output" -- bash -c "'$mt' tokenize --vocab vocab.txt < in.jsonl > /dev/full"
expect_error 1 "cannot write standard output" -- bash -c "'$mt' config show --config '$repo/configs/tiny.yaml' > /dev/full"
expect_error 1 "cannot write standard output" -- bash -c "'$mt' config doc > /dev/full"
expect_error 1 "cannot write standard output" -- bash -c "'$mt' data stats prep > /dev/full"
expect_error 1 "cannot write standard output" -- bash -c "'$mt' data stats prep --json > /dev/full"
expect_error 1 "cannot write standard output" -- bash -c "'$mt' predict --model run/model --input in.jsonl > /dev/full"
expect_error 1 "cannot write standard output" -- bash -c "'$mt' eval --model run/model --data 'data/valid-*.jsonl' > /dev/full"
expect_error 1 "cannot write /dev/full" -- "$mt" config doc --out /dev/full

# data synth: a non-empty directory is refused; --force clears it (no stale shards left to mix in)
expect_error 2 "--out data is not empty .*--force" -- "$mt" data synth --out data --train 10 --valid 10
touch data/train-00099.jsonl
expect_ok -- "$mt" data synth --out data --train 10 --valid 10 --train-shards 1 --force
[[ ! -e data/train-00099.jsonl && $(ls data | tr "\n" " ") == "bayes-valid.jsonl ceiling.json train-00000.jsonl valid-00000.jsonl " ]] || fail "--force left old files: $(ls data)"
touch afile
expect_error 2 "--out afile is a regular file" -- "$mt" data synth --out afile --train 10 --valid 10
echo "hostile outputs ok ($cases cases)"
