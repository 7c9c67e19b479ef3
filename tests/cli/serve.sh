#!/usr/bin/env bash
# `modtrain serve` end to end on loopback (tests/cli/serve_test.py does the HTTP): scores equal to
# `modtrain predict`, TEI's /predict shape, every bad-input class, the queue's 503, a route fuzz
# bounded in time, a short load run (wrk), reload with a good and a bad model (HTTP and SIGHUP), and
# the SIGTERM drain.
# Usage: serve.sh MODTRAIN REPO_DIR [--full] (--full: a longer fuzz)
set -euo pipefail
mt=$(realpath "$1") repo=$(realpath "$2") full=${3:-}
source "$(dirname "$0")/common.sh"
synth_data "$mt" 1500 100 1200
cfg=(--config "$repo/configs/tiny.yaml" --set tokenizer.vocab=vocab.txt --set data.prepared_dir=prep
     --set train.warmup_steps=2 --set log.every=10 --set eval.every=0 --set dist.threads=1 --set checkpoint.every=0)
"$mt" data prepare "${cfg[@]}" > /dev/null
"$mt" train "${cfg[@]}" --set run.dir=one --set train.max_steps=30 > /dev/null
"$mt" train "${cfg[@]}" --set run.dir=two --set train.max_steps=12 --set run.seed=7 > /dev/null
exec python3 "$repo/tests/cli/serve_test.py" "$mt" "$dir" $full
