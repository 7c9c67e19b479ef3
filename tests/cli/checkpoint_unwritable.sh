#!/usr/bin/env bash
# A 2-rank training run whose rank 0 cannot write a checkpoint (run/checkpoints is a file, as a
# full or read-only disk would fail): prints its error line and exits non-zero; expect.sh checks
# the line and that the job ends (no rank left waiting for the save).
# Usage: checkpoint_unwritable.sh MODTRAIN REPO_DIR
set -eu
mt=$1 repo=$2
dir=$(mktemp -d); trap 'rm -rf "$dir"' EXIT
cd "$dir"
"$mt" data synth --out data --train 300 --valid 10 > /dev/null
"$mt" tokenizer train --input 'data/train-*.jsonl' --vocab-size 500 --out vocab.txt > /dev/null 2>&1
cfg=(--config "$repo/configs/tiny.yaml" --set tokenizer.vocab=vocab.txt --set data.prepared_dir=prep --set "data.valid=[]"
     --set run.dir=run --set train.max_steps=4 --set train.warmup_steps=0 --set checkpoint.every=2 --set dist.threads=1)
"$mt" data prepare "${cfg[@]}" > /dev/null
mkdir -p run && touch run/checkpoints
exec mpiexec --oversubscribe -np 2 "$mt" train "${cfg[@]}"
