#!/usr/bin/env bash
# Checkpoint benchmark (docs/performance.md "Checkpoints", bench/results/checkpoint-*.json):
#  1. one process, no training (bench/bench_checkpoint.cpp): what a save blocks, sync and async,
#     the whole save and the load, for the tiny and the BERT-base-sized model;
#  2. `modtrain train` itself (scripts/bench_checkpoint.py): 1 and 2 ranks x train.zero 0 and 1 x
#     checkpoint.async false and true, tiny and BERT-base-sized: the blocking per save (the first
#     apart), the cost per save against a run without periodic saves (blocking + the slowdown of the
#     steps beside a background write), the write and commit times, the bytes of the busiest rank,
#     the RssAnon peak above the steady state, and the load time of a resume.
# Usage: scripts/bench_checkpoint.sh [tiny|base|all]   (env WORK: scratch directory)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
mt=$repo/build/modtrain
which=${1:-all}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
work=${WORK:-/tmp/modtrain-bench-checkpoint}
rm -rf "$work" && mkdir -p "$work"
cd "$work"
"$mt" data synth --out data --train 3000 --valid 100 > /dev/null
"$mt" tokenizer train --input 'data/train-*.jsonl' --vocab-size 4000 --out vocab.txt > /dev/null 2>&1
# BERT-base's vocabulary size: the trained WordPiece vocabulary padded with unused tokens (the
# embedding matrix, its gradient and moments are what make the checkpoint 1.3 GB).
python3 - <<'PY'
lines = open("vocab.txt").read().split("\n")
lines = [l for l in lines if l]
lines += ["[unused%d]" % i for i in range(30522 - len(lines))]
open("vocab-base.txt", "w").write("\n".join(lines) + "\n")
PY
common=(--config "$repo/configs/tiny.yaml" --set data.prepared_dir=prep --set data.valid=[] --set eval.every=0
        --set train.warmup_steps=0 --set dist.threads=1 --set log.level=info)
"$mt" data prepare "${common[@]}" --set tokenizer.vocab=vocab.txt > /dev/null
"$mt" data prepare "${common[@]}" --set tokenizer.vocab=vocab-base.txt --set data.prepared_dir=prep-base > /dev/null
for preset in tiny base; do
  [[ $which == all || $which == "$preset" ]] || continue
  "$repo/build/bench/modtrain_bench_checkpoint" --preset $preset --dir "$work/micro" --repeats 3 \
    --out "$repo/bench/results/checkpoint-$preset.json"
  if [[ $preset == tiny ]]; then
    STEPS=40 EVERY=10 python3 "$repo/scripts/bench_checkpoint.py" "$mt" "$repo/bench/results/checkpoint-train-tiny.json" \
      "${common[@]}" --set tokenizer.vocab=vocab.txt
  else
    STEPS=12 EVERY=4 python3 "$repo/scripts/bench_checkpoint.py" "$mt" "$repo/bench/results/checkpoint-train-base.json" \
      "${common[@]}" --set tokenizer.vocab=vocab-base.txt --set data.prepared_dir=prep-base --set model.hidden=768 \
      --set model.layers=12 --set model.heads=12 --set model.intermediate=3072 --set train.micro_batch=2 \
      --set data.max_len=32
  fi
done
