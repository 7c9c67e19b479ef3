#!/usr/bin/env bash
# Runs the benchmarks; each writes JSON to bench/results/. Builds first (scripts/setup.sh).
# The tokenizer benchmark reads English words from /usr/share/dict/words (Debian: wamerican)
# when present, for a realistic 30k vocabulary.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
if [[ ! -f /usr/share/dict/words ]] && [[ $(id -u) -eq 0 ]]; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends wamerican >/dev/null || true
fi
mkdir -p bench/results
build/bench/modtrain_bench_tokenizer --out bench/results/tokenizer.json
build/bench/modtrain_bench_long_words --out bench/results/long-words.json  # 1 KB to 4 MB words, each family
build/bench/modtrain_bench_data --out bench/results/data.json
build/bench/modtrain_bench_train --preset tiny --batch 32 --seq 64 --steps 30
build/bench/modtrain_bench_train --preset base --batch 8 --seq 128 --steps 3
build/bench/modtrain_bench_checkpoint --preset tiny
build/bench/modtrain_bench_checkpoint --preset base
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
mpiexec -np 2 build/bench/modtrain_bench_allreduce --out bench/results/allreduce.json
scripts/bench_train_ranks.sh
scripts/bench_peer.sh
scripts/bench_optimizer.sh
scripts/bench_unpad.sh          # padded vs model.unpad real tokens/s -> bench/results/unpad.json
scripts/bench_tokenizer_peer.sh # tokenizers vs Hugging Face tokenizers -> bench/results/tokenizer-peer.json
# The classical baseline on the quickstart's split: TF-IDF + logistic regression, and the
# task's ceiling (the Bayes-optimal scores data synth writes).
build/modtrain data synth --out runs/bench-synth --train 100000 --valid 5000 --train-shards 4 --force > /dev/null
/usr/bin/python3 bench/peer/tfidf_baseline.py --train 'runs/bench-synth/train-*.jsonl' \
  --valid 'runs/bench-synth/valid-*.jsonl' --out bench/results/tfidf_baseline.json
cp runs/bench-synth/ceiling.json bench/results/synth_ceiling.json
echo "results in bench/results/"
