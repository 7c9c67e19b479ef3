#!/usr/bin/env bash
# A 2-rank training run whose rank 0 cannot write a checkpoint (run/checkpoints is a file, as a
# full or read-only disk would fail): prints its error line and exits non-zero; expect.sh checks
# the line and that the job ends (no rank left waiting for the save).
# Usage: checkpoint_unwritable.sh MODTRAIN REPO_DIR
set -eu
mt=$1 repo=$2
source "$(dirname "$0")/common.sh"
synth_data "$mt" 300 10 500
cfg=(--config "$repo/configs/tiny.yaml" --set tokenizer.vocab=vocab.txt --set data.prepared_dir=prep --set "data.valid=[]"
     --set run.dir=run --set train.max_steps=4 --set train.warmup_steps=0 --set checkpoint.every=2 --set dist.threads=1)
"$mt" data prepare "${cfg[@]}" > /dev/null
mkdir -p run && touch run/checkpoints
exec mpiexec --oversubscribe -np 2 "$mt" train "${cfg[@]}"
