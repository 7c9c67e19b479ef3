#!/usr/bin/env bash
# The README's first command: installs what is missing, builds, then runs the main job end to end
# on the embedded default (configs/tiny.yaml, synthetic tweets, 2 CPU ranks): data, tokenizer,
# training with checkpoints, evaluation, export for Hugging Face and batch prediction. It prints
# each step as it runs it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1

step() { printf '\n== %s\n$ %s\n' "$1" "${*:2}"; "${@:2}"; }
mt=$PWD/build/modtrain
work=runs/quickstart
mkdir -p "$work"
cfg=(--config "$PWD/configs/tiny.yaml" --set run.dir=$work --set tokenizer.vocab=$work/vocab.txt
     --set data.prepared_dir=$work/prepared --set "data.train=[$work/data/train-*.jsonl]"
     --set "data.valid=[$work/data/valid-*.jsonl]")

step "what this binary is" "$mt" --version
step "validate configs/tiny.yaml on 2 MPI ranks (all ranks must resolve the same config)" \
  mpirun -np 2 "$mt" config check "${cfg[@]}"
step "synthetic tweets (the embedded default dataset)" \
  "$mt" data synth --out $work/data --train 20000 --valid 2000 --train-shards 4 --force
step "train a WordPiece vocabulary on them" \
  "$mt" tokenizer train --input "$work/data/train-*.jsonl" --vocab-size 4000 --out $work/vocab.txt
step "tokenize into prepared binary shards" "$mt" data prepare "${cfg[@]}"
step "what the prepared data holds" "$mt" data stats $work/prepared
rm -rf "$work/checkpoints" "$work/model" "$work/metrics.jsonl"  # a fresh run each time quickstart runs
step "train on 2 MPI ranks (data parallel, MPI all-reduce; checkpoints every 100 steps)" mpirun -np 2 "$mt" train "${cfg[@]}"
step "evaluate the trained model on the validation shards" "$mt" eval --model $work/model --data "$work/data/valid-*.jsonl"
step "export for Hugging Face transformers / text-embeddings-inference" "$mt" export --checkpoint $work/model --out $work/hf
printf 'you people are all idiots\nlovely weather in the park today\nclick here to win a free phone http://spam.example\n' > $work/posts.txt
step "score three posts (probabilities, labels flagged by the tuned thresholds)" "$mt" predict --model $work/model --input $work/posts.txt --output -

cat <<TXT

== done
Run directory: $work (config.yaml, metrics.jsonl, checkpoints/ (latest, best, step-NNNNNNN),
model/ with model.safetensors, config.json, vocab.txt, modtrain.json, eval.json), hf/ (the export).
Train your own: edit a copy of configs/tiny.yaml and run
  mpirun -np 2 build/modtrain train --config my.yaml
TXT
