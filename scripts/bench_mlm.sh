#!/usr/bin/env bash
# The trainer's masked-LM step against its classification step: real tokens per second
# that `modtrain train` logs for train.objective classify and mlm on the same records, model and
# batch (configs/tiny.yaml, the realistic synthetic lengths, 2 ranks x 1 thread, vocabulary 8,000),
# the two objectives alternating, after the first logging window (warm-up). The masked-LM head and
# the tied vocabulary projection run on the ~15% chosen tokens only. Writes bench/results/mlm_trainer.json.
# Usage: scripts/bench_mlm.sh [REPEATS] (build first: scripts/setup.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
repeats=${1:-2}
repo=$PWD mt=$PWD/build/modtrain
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
cd "$work"
"$mt" data synth --out data --train 6000 --valid 100 > /dev/null
"$mt" tokenizer train --input 'data/train-*.jsonl' --vocab-size 8000 --out vocab.txt > /dev/null 2>&1
common=(--config "$repo/configs/tiny.yaml" --set tokenizer.vocab=vocab.txt --set data.valid=[] --set eval.every=0
        --set checkpoint.every=0 --set dist.threads=1 --set dist.blas_threads=1 --set train.warmup_steps=1
        --set train.max_steps=120 --set log.every=20)
"$mt" data prepare "${common[@]}" --set data.prepared_dir=prep-classify > /dev/null
"$mt" data prepare "${common[@]}" --set data.prepared_dir=prep-mlm --set 'data.labels=[]' --set train.objective=mlm --set train.pos_weight=none > /dev/null
for rep in $(seq "$repeats"); do
  for objective in classify mlm; do
    extra=(--set data.prepared_dir=prep-$objective --set run.dir=run-$objective-$rep --set train.objective=$objective)
    [[ $objective == mlm ]] && extra+=(--set 'data.labels=[]' --set train.pos_weight=none)
    mpiexec -np 2 "$mt" train "${common[@]}" "${extra[@]}" > /dev/null 2>&1
  done
done
/usr/bin/python3 - "$repo/bench/results/mlm_trainer.json" "$repeats" <<'PY'
import json, statistics, subprocess, sys, glob, platform
out, repeats = sys.argv[1], int(sys.argv[2])
def tokens_per_s(objective):
    values = []
    for path in sorted(glob.glob("run-%s-*/metrics.jsonl" % objective)):
        train = [json.loads(l) for l in open(path) if '"event":"train"' in l]
        values += [e["tokens_per_s"] for e in train[1:]]
    return statistics.median(values), len(values)
(c, nc), (m, nm) = tokens_per_s("classify"), tokens_per_s("mlm")
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.machine())
result = {"what": "modtrain train: real tokens/s (all ranks) of train.objective classify vs mlm, configs/tiny.yaml, "
                  "vocabulary 8000, realistic synthetic lengths, 2 MPI ranks x 1 thread, median over logging windows "
                  "after the first", "cpu": cpu, "repeats": repeats,
          "classify_tokens_per_s": round(c, 1), "mlm_tokens_per_s": round(m, 1), "mlm_over_classify": round(m / c, 3),
          "windows": {"classify": nc, "mlm": nm}}
json.dump(result, open(out, "w"), indent=2)
print(json.dumps(result, indent=2))
PY
